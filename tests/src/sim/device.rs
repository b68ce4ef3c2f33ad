//! A device: the agent's real store, and its sync round as a state machine. Each step of
//! `agent::sync::sync_once` (push the outbox in pipelined batches, pull every page, compare
//! digests, note the sync) is one transition here, so the world can interleave, lose,
//! duplicate and reorder the messages between them and crash the device in between.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use fieldsync_agent::store::Store;
use fieldsync_proto::wire::{
    DigestResponse, EnrollResponse, HelloResponse, PullPage, PushRequest, PushResponse,
};
use fieldsync_proto::{DeviceId, EntityId, Op, Role};
use fieldsync_server::store::Actor;

use super::{Msg, Payload, SimClock, WireError, World};

/// Where a device is in its sync round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    /// Waiting for the server's epoch and how far it has our ops.
    Hello {
        req: u64,
    },
    /// Waiting for the answer to a push that carried ops `first..=last`.
    Push {
        req: u64,
        first: u64,
        last: u64,
    },
    Pull {
        req: u64,
    },
    Digest {
        req: u64,
    },
}

impl Phase {
    pub(super) fn req(self) -> Option<u64> {
        match self {
            Phase::Idle => None,
            Phase::Hello { req }
            | Phase::Push { req, .. }
            | Phase::Pull { req }
            | Phase::Digest { req } => Some(req),
        }
    }
}

pub(super) struct Device {
    pub idx: usize,
    pub user: String,
    pub role: Role,
    pub device_id: DeviceId,
    pub dir: PathBuf,
    pub clock: Arc<SimClock>,
    /// Device clock minus true time.
    pub skew_ms: i64,
    /// None while crashed.
    pub store: Option<Store>,
    /// Bumped by every crash; answers to an older incarnation's requests are ignored.
    pub incarnation: u64,
    pub phase: Phase,
    /// The round's push failed with an answer from the server (not a timeout): the pull
    /// still runs, the digest check does not.
    push_failed: bool,
    server_time: Option<u64>,
    pub partitioned: bool,
    /// Every op the store reported saved: what the engineer was told is safe.
    pub recorded: BTreeMap<u64, Op>,
    /// Notes this device created, to void some later.
    pub notes: Vec<EntityId>,
    /// The server was restored since this device last checked its history.
    pub expect_rollback: bool,
    /// The seqs the push in flight carries.
    sent_seqs: Vec<u64>,
    /// Ops a server answered as applied at some point: if one is refused in the end, it
    /// was re-sent after a restore and refused then.
    pub applied_once: BTreeSet<u64>,
}

impl Device {
    pub(super) fn new(
        idx: usize,
        user: &str,
        role: Role,
        device_id: DeviceId,
        dir: PathBuf,
    ) -> Device {
        Device {
            idx,
            user: user.to_owned(),
            role,
            device_id,
            dir,
            clock: Arc::new(SimClock::default()),
            skew_ms: 0,
            store: None,
            incarnation: 0,
            phase: Phase::Idle,
            push_failed: false,
            server_time: None,
            partitioned: false,
            recorded: BTreeMap::new(),
            notes: Vec::new(),
            expect_rollback: false,
            sent_seqs: Vec::new(),
            applied_once: BTreeSet::new(),
        }
    }

    pub(super) fn actor(&self) -> Actor {
        Actor {
            user: self.user.clone(),
            role: self.role,
            device: Some(self.device_id),
        }
    }

    pub(super) fn open(&mut self) -> fieldsync_agent::Result<()> {
        let store = Store::open_with_clock(&self.dir, self.clock.clone())?;
        self.store = Some(store);
        Ok(())
    }

    pub(super) fn enroll(&mut self, server_time_ms: u64) -> fieldsync_agent::Result<()> {
        let resp = EnrollResponse {
            device_id: self.device_id,
            token: format!("sim-token-{}", self.device_id),
            user: self.user.clone(),
            role: self.role,
            protocol: fieldsync_proto::wire::PROTOCOL_VERSION,
            server_time_ms,
        };
        self.store_mut()
            .save_enrollment("sim://server", &resp, None)
    }

    /// The process dies: the open connection goes without a goodbye; whatever SQLite
    /// committed is in the file, nothing else survives.
    pub(super) fn crash(&mut self) {
        self.store = None;
        self.incarnation += 1;
        self.end_round();
    }

    pub(super) fn end_round(&mut self) {
        self.phase = Phase::Idle;
        self.push_failed = false;
        self.server_time = None;
    }

    pub(super) fn can_start_round(&self) -> bool {
        self.store.is_some() && self.phase == Phase::Idle
    }

    pub(super) fn waiting(&self) -> bool {
        self.phase != Phase::Idle
    }

    pub(super) fn store_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("the device is running")
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("the device is running")
    }

    /// What the device's wall clock reads now.
    pub(super) fn clock_now(&self) -> u64 {
        use fieldsync_agent::store::Clock;
        self.clock.now_ms()
    }

    /// The millisecond part of the device's hybrid clock, if it is running.
    pub(super) fn hlc_millis(&self) -> Option<u64> {
        let hlc = self.store.as_ref()?.meta_u64("hlc").ok()?;
        Some(fieldsync_proto::Hlc(hlc).millis())
    }

    pub(super) fn fingerprint(&self) -> fieldsync_agent::Result<(u64, u64, String)> {
        let s = self.store();
        Ok((s.pending_count()?, s.cursor()?, s.digest()?))
    }
}

/// The agent error as the trace shows it.
fn err(e: fieldsync_agent::AgentError) -> String {
    e.to_string()
}

impl World {
    fn request(&mut self, d: usize, payload: Payload) -> u64 {
        let req = self.new_req();
        let incarnation = self.devices[d].incarnation;
        self.send(Msg {
            device: d,
            to_server: true,
            req,
            incarnation,
            payload,
        });
        req
    }

    /// Begin `sync_once`: ask the server which history it is on.
    pub(super) fn start_round(&mut self, d: usize) {
        self.trace(format!("dev{d}: sync round starts"));
        let req = self.request(d, Payload::Hello);
        self.devices[d].phase = Phase::Hello { req };
    }

    /// Check the server's history (a restored server makes the store re-queue what it
    /// lost), then push the first batch of the outbox, or pull if it is empty.
    fn on_hello(&mut self, d: usize, result: Result<String, WireError>) {
        let hello: HelloResponse = match result {
            Ok(body) => match serde_json::from_str(&body) {
                Ok(h) => h,
                Err(e) => return self.violation(format!("dev{d}: undecodable hello: {e}")),
            },
            Err(e) => {
                self.trace(format!(
                    "dev{d}: hello failed ({} {}), round ends",
                    e.status, e.code
                ));
                return self.devices[d].end_round();
            }
        };
        self.devices[d].server_time = Some(hello.server_time_ms);
        if self.crash_here(d, "before checking the server's history") {
            return;
        }
        match self.devices[d]
            .store_mut()
            .check_server_history(hello.epoch, hello.acked_seq)
        {
            Ok(0) => {}
            Ok(n) if self.devices[d].expect_rollback => {
                self.trace(format!("dev{d}: the server was rolled back; {n} ops re-queued"))
            }
            Ok(n) => {
                return self.violation(format!(
                    "dev{d}: saw a server rollback that never happened and re-queued {n} ops (server acked {}, epoch {})",
                    hello.acked_seq, hello.epoch
                ))
            }
            Err(e) => return self.violation(format!("dev{d}: check_server_history: {}", err(e))),
        }
        // An answer from before the restore (delayed in the network) says nothing of it.
        if hello.epoch == self.server.epoch() {
            self.devices[d].expect_rollback = false;
        }
        let max = self.params.push_batch_ops_max;
        let batch = match self.devices[d].store_mut().push_batch_after(0, max) {
            Ok(b) => b,
            Err(e) => return self.violation(format!("dev{d}: push_batch: {}", err(e))),
        };
        self.send_batch_or_pull(d, batch);
    }

    fn send_batch_or_pull(&mut self, d: usize, batch: Vec<Op>) {
        match batch.first().zip(batch.last()).map(|(a, b)| (a.seq, b.seq)) {
            Some((first, last)) => {
                self.devices[d].sent_seqs = batch.iter().map(|op| op.seq).collect();
                let body = serde_json::to_string(&PushRequest { ops: batch }).expect("serialises");
                let req = self.request(d, Payload::Push(body));
                self.devices[d].phase = Phase::Push { req, first, last };
            }
            None => self.send_pull(d),
        }
    }

    fn send_pull(&mut self, d: usize) {
        let cursor = match self.devices[d].store().cursor() {
            Ok(c) => c,
            Err(e) => return self.violation(format!("dev{d}: cursor: {}", err(e))),
        };
        let limit = self.params.pull_page_entities_max;
        let req = self.request(d, Payload::Pull { cursor, limit });
        self.devices[d].phase = Phase::Pull { req };
    }

    /// A crash point inside the handling of one answer.
    fn crash_here(&mut self, d: usize, when: &str) -> bool {
        if self.faults_on && self.rng.chance(self.params.device_crash_mid_fold) {
            self.crash_device(d, when);
            return true;
        }
        false
    }

    pub(super) fn on_response(&mut self, d: usize, result: Result<String, WireError>) {
        match self.devices[d].phase {
            Phase::Idle => unreachable!("an idle device has no request to answer"),
            Phase::Hello { .. } => self.on_hello(d, result),
            Phase::Push { first, last, .. } => self.on_push_answer(d, first..=last, result),
            Phase::Pull { .. } => self.on_page(d, result),
            Phase::Digest { .. } => self.on_digest(d, result),
        }
    }

    /// `push_pending`: on a complete ack, the next batch goes on the wire before this ack
    /// is folded into the store; a partial ack or an error answer ends the push, and the
    /// round goes on to pull.
    fn on_push_answer(
        &mut self,
        d: usize,
        sent: std::ops::RangeInclusive<u64>,
        result: Result<String, WireError>,
    ) {
        let last = *sent.end();
        let resp: PushResponse = match result {
            Ok(body) => match serde_json::from_str(&body) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("dev{d}: undecodable push answer: {e}")),
            },
            Err(e) => {
                self.trace(format!(
                    "dev{d}: push refused ({} {}), pulling",
                    e.status, e.code
                ));
                self.devices[d].push_failed = true;
                return self.send_pull(d);
            }
        };
        let recorded_max = self.devices[d].recorded.keys().next_back().copied();
        if resp.acked_seq > recorded_max.unwrap_or(0) {
            return self.violation(format!(
                "dev{d}: the server acknowledged op {} but the device recorded ops up to {recorded_max:?}",
                resp.acked_seq
            ));
        }
        self.devices[d].server_time = Some(resp.server_time_ms);
        let dev = &mut self.devices[d];
        for seq in &dev.sent_seqs {
            // A parked op is acknowledged, not applied: it may still be refused.
            if *seq <= resp.acked_seq
                && !resp.rejected.iter().any(|r| r.seq == *seq)
                && !resp.parked.contains(seq)
            {
                dev.applied_once.insert(*seq);
            }
        }
        let complete = resp.acked_seq >= last;
        let mut next_sent = false;
        if complete {
            let max = self.params.push_batch_ops_max;
            let next = match self.devices[d].store().push_batch_after(last, max) {
                Ok(b) => b,
                Err(e) => return self.violation(format!("dev{d}: push_batch_after: {}", err(e))),
            };
            if !next.is_empty() {
                self.send_batch_or_pull(d, next);
                next_sent = true;
                if self.crash_here(d, "after sending the next batch, before folding the ack") {
                    return;
                }
            }
        } else if self.crash_here(d, "before folding a partial ack") {
            return;
        }
        match self.devices[d].store_mut().ack(&resp, sent) {
            Ok(out) => self.trace(format!(
                "dev{d}: folded ack to {} ({} applied, {} refused)",
                resp.acked_seq, out.applied, out.rejected
            )),
            Err(e) => return self.violation(format!("dev{d}: ack: {}", err(e))),
        }
        if !complete {
            self.trace(format!(
                "dev{d}: partial ack ({} of a batch ending at {last}), pulling",
                resp.acked_seq
            ));
            self.devices[d].push_failed = true;
            self.send_pull(d);
        } else if !next_sent {
            self.send_pull(d);
        }
    }

    /// `pull_all`: apply each page, follow `more`; then the digest check when nothing is
    /// pending and the push went through.
    fn on_page(&mut self, d: usize, result: Result<String, WireError>) {
        let page: PullPage = match result {
            Ok(body) => match serde_json::from_str(&body) {
                Ok(p) => p,
                Err(e) => return self.violation(format!("dev{d}: undecodable page: {e}")),
            },
            Err(e) => {
                self.trace(format!(
                    "dev{d}: pull failed ({} {}), round ends",
                    e.status, e.code
                ));
                return self.devices[d].end_round();
            }
        };
        self.devices[d].server_time = Some(page.server_time_ms);
        if self.crash_here(d, "before applying a page") {
            return;
        }
        if let Err(e) = self.devices[d].store_mut().apply_page(&page) {
            return self.violation(format!("dev{d}: apply_page: {}", err(e)));
        }
        self.trace(format!(
            "dev{d}: applied page to cursor {} ({} entities, {} left{})",
            page.cursor,
            page.entities.len(),
            page.left.len(),
            if page.more { ", more" } else { "" }
        ));
        if page.more {
            return self.send_pull(d);
        }
        if self.devices[d].push_failed {
            // `sync_once` returns the push error here, before the digest and note_sync.
            return self.devices[d].end_round();
        }
        let pending = match self.devices[d].store().pending_count() {
            Ok(p) => p,
            Err(e) => return self.violation(format!("dev{d}: pending_count: {}", err(e))),
        };
        if pending == 0 {
            let req = self.request(d, Payload::Digest);
            self.devices[d].phase = Phase::Digest { req };
        } else {
            self.finish_round(d);
        }
    }

    /// The digest check: at equal cursors the states must be equal, or the device would
    /// report `in_sync: false` with nothing left to fetch.
    fn on_digest(&mut self, d: usize, result: Result<String, WireError>) {
        let server: DigestResponse = match result {
            Ok(body) => match serde_json::from_str(&body) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("dev{d}: undecodable digest: {e}")),
            },
            Err(e) => {
                self.trace(format!("dev{d}: digest failed ({} {})", e.status, e.code));
                return self.devices[d].end_round();
            }
        };
        let store = self.devices[d].store();
        let (cursor, digest) = match (store.cursor(), store.digest()) {
            (Ok(c), Ok(g)) => (c, g),
            (Err(e), _) | (_, Err(e)) => {
                return self.violation(format!("dev{d}: reading the digest: {}", err(e)))
            }
        };
        if self.devices[d].expect_rollback {
            // The server was restored after this round's hello: its cursors count another
            // history now. The next hello notices and pulls everything again.
            self.trace(format!(
                "dev{d}: digest from a restored server, not compared"
            ));
        } else if server.cursor == cursor {
            if server.digest != digest {
                let diff = super::check::scope_diff(self, d);
                return self.violation(format!(
                    "dev{d}: digest differs from the server's at the same cursor {cursor} with nothing pending: {diff}"
                ));
            }
            self.trace(format!("dev{d}: in sync at cursor {cursor}"));
        }
        self.finish_round(d);
    }

    fn finish_round(&mut self, d: usize) {
        if let Some(t) = self.devices[d].server_time {
            if let Err(e) = self.devices[d].store_mut().note_sync(t) {
                return self.violation(format!("dev{d}: note_sync: {}", err(e)));
            }
        }
        self.trace(format!("dev{d}: sync round done"));
        self.devices[d].end_round();
    }
}
