//! One sync round: push every pending op in bounded batches, pull every page of changes
//! since the cursor, then check the result against the server's digest.

use std::collections::VecDeque;

use fieldsync_proto::limits::CLOCK_SKEW_MS_MAX;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::client::Client;
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::store::Store;
use fieldsync_proto::wire::{PullPage, PushResponse};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncReport {
    /// Ops the server acknowledged in this round (applied or refused).
    pub pushed: u64,
    /// Entities received (changed, entered or left the scope).
    pub pulled: u64,
    /// Ops still waiting for the server.
    pub pending: u64,
    /// Ops the server refused in this round; `info` lists every refused op kept.
    pub rejected: u64,
    /// Whether the local state equals the server's for this device's scope; null when it
    /// could not be checked (ops still pending, or the server moved on meanwhile).
    pub in_sync: Option<bool>,
    /// Ops sent again because the server was restored from a backup that lacked them.
    pub resent_after_rollback: u64,
    /// Ops the server acknowledged in this round but applies only once what they depend on
    /// has been re-sent by another device (after a restore); a later pull shows them.
    pub parked: u64,
    /// Device clock minus server clock, in ms.
    pub clock_offset_ms: i64,
    /// The photo upload queue, which runs after the record ops.
    pub photos: crate::upload::UploadReport,
}

impl SyncReport {
    pub fn clock_warning(&self) -> Option<String> {
        let off = self.clock_offset_ms;
        (off.unsigned_abs() > CLOCK_SKEW_MS_MAX).then(|| {
            format!(
                "this device's clock is {} min {} the server's: set the right time",
                off.unsigned_abs() / 60_000,
                if off > 0 { "ahead of" } else { "behind" }
            )
        })
    }
}

/// Run one round. On a push failure the pull still runs, so a device whose ops the server
/// cannot take yet (a wrong clock) still receives its new work; the push error is
/// returned after.
pub async fn sync_once(store: &mut Store, client: &Client, cfg: &Config) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let hello = client.hello().await?;
    report.resent_after_rollback = store.check_server_history(hello.epoch, hello.acked_seq)?;
    let mut server_time = Some(hello.server_time_ms);
    let push_result = push_all(store, client, cfg, &mut report, &mut server_time).await;
    if let Err(AgentError::Unreachable { .. } | AgentError::Unauthorized(_)) = &push_result {
        return push_result.map(|_| report);
    }
    let pull_result = pull_all(store, client, cfg, &mut report, &mut server_time).await;
    push_result?;
    pull_result?;
    report.pending = store.pending_count()?;
    if report.pending == 0 {
        let server = client.digest().await?;
        if server.cursor == store.cursor()? {
            report.in_sync = Some(server.digest == store.digest()?);
        }
    }
    if let Some(t) = server_time {
        report.clock_offset_ms = store.note_sync(t)?;
    }
    report.photos = crate::upload::run_queue(store, client, cfg).await?;
    Ok(report)
}

async fn push_all(
    store: &mut Store,
    client: &Client,
    cfg: &Config,
    report: &mut SyncReport,
    server_time: &mut Option<u64>,
) -> Result<()> {
    let out = push_pending(store, client, cfg.push_batch_ops_max).await?;
    report.pushed += out.acked;
    report.rejected += out.rejected;
    report.parked += out.parked;
    if out.server_time_ms.is_some() {
        *server_time = out.server_time_ms;
    }
    Ok(())
}

/// What pushing the outbox did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Ops the server acknowledged, applied or refused.
    pub acked: u64,
    pub rejected: u64,
    pub parked: u64,
    pub server_time_ms: Option<u64>,
}

/// A push request on the wire, and the op seqs it carries.
type InFlight = (
    tokio::task::JoinHandle<Result<PushResponse>>,
    std::ops::RangeInclusive<u64>,
);

fn send(client: &Client, batch: Vec<(u64, Box<RawValue>)>) -> Option<InFlight> {
    let sent = batch.first()?.0..=batch.last()?.0;
    let ops: Vec<Box<RawValue>> = batch.into_iter().map(|(_, op)| op).collect();
    let client = client.clone();
    Some((
        tokio::spawn(async move { client.push_raw(&ops).await }),
        sent,
    ))
}

/// Push requests on the wire at once. While the server applies batch k+1, the answer to
/// batch k travels back and is recorded here, and batch k+4 is read, encoded, sent and
/// decoded. With agent and server on one 2-core machine, three in flight still left the
/// server's writer waiting for its next batch half the time (`fieldsync-bench sync`);
/// four cut the 10,000-edit push's median from 0.34 s to 0.29 s. The server takes a
/// device's batches in order whatever order HTTP/2 hands them over in (a batch that
/// arrives early waits for the one before it).
pub const PUSH_IN_FLIGHT_MAX: usize = 4;

/// Push every pending op in batches of at most `batch_max`, with up to
/// [`PUSH_IN_FLIGHT_MAX`] batches in flight. Each answer is folded in order; an ack settles
/// only the ops its own request carried, so the batches still in flight stay pending until
/// theirs arrives. If anything fails, the requests still in flight are abandoned: their
/// ops stay pending, and the server's idempotence absorbs the resend of any it applied.
pub async fn push_pending(
    store: &mut Store,
    client: &Client,
    batch_max: usize,
) -> Result<PushOutcome> {
    let mut out = PushOutcome::default();
    let mut in_flight = InFlightQueue::default();
    let mut sent_up_to = in_flight.fill(store, client, 0, batch_max)?;
    while let Some((request, sent)) = in_flight.queue.pop_front() {
        let last = *sent.end();
        let resp = request.await.map_err(|e| AgentError::Unreachable {
            url: client.base().to_owned(),
            reason: format!("the push was interrupted: {e}"),
        })??;
        out.server_time_ms = Some(resp.server_time_ms);
        let complete = resp.acked_seq >= last;
        if complete {
            sent_up_to = in_flight.fill(store, client, sent_up_to, batch_max)?;
        }
        let acked = store.ack(&resp, sent)?;
        out.acked += (acked.applied + acked.rejected + acked.parked) as u64;
        out.rejected += acked.rejected as u64;
        out.parked += acked.parked as u64;
        if !complete {
            return Err(AgentError::Server {
                status: 200,
                code: "partial_ack".into(),
                message: format!(
                    "the server acknowledged up to op {} of a batch ending at {last}",
                    resp.acked_seq
                ),
            });
        }
    }
    Ok(out)
}

/// The push requests on the wire, oldest first. Dropped with requests left (an error
/// ended the push), it aborts them.
#[derive(Default)]
struct InFlightQueue {
    queue: VecDeque<InFlight>,
}

impl InFlightQueue {
    /// Send batches after op `after` until [`PUSH_IN_FLIGHT_MAX`] are on the wire or the
    /// outbox has no more; the last op seq sent.
    fn fill(&mut self, store: &Store, client: &Client, mut after: u64, max: usize) -> Result<u64> {
        while self.queue.len() < PUSH_IN_FLIGHT_MAX {
            let Some(request) = send(client, store.outgoing_after(after, max)?) else {
                break;
            };
            after = *request.1.end();
            self.queue.push_back(request);
        }
        Ok(after)
    }
}

impl Drop for InFlightQueue {
    fn drop(&mut self) {
        for (request, _) in &self.queue {
            request.abort();
        }
    }
}

async fn pull_all(
    store: &mut Store,
    client: &Client,
    cfg: &Config,
    report: &mut SyncReport,
    server_time: &mut Option<u64>,
) -> Result<()> {
    let limit = cfg.pull_page_entities_max;
    let mut next = Prefetch::start(client, store.cursor()?, limit);
    loop {
        let page = next.take(client).await?;
        // The next page is on its way while this one is applied: the server reads it while
        // the store writes this one. Its cursor is the one this page leaves behind.
        if page.more {
            next = Prefetch::start(client, page.cursor, limit);
        }
        *server_time = Some(page.server_time_ms);
        report.pulled += (page.entities.len() + page.left.len()) as u64;
        store.apply_page(&page)?;
        if !page.more {
            return Ok(());
        }
    }
}

/// A pull request on the wire. Dropped before it is taken (applying the page before it
/// failed), it is aborted.
struct Prefetch(Option<tokio::task::JoinHandle<Result<PullPage>>>);

impl Prefetch {
    fn start(client: &Client, cursor: u64, limit: usize) -> Prefetch {
        let client = client.clone();
        Prefetch(Some(tokio::spawn(async move {
            client.pull(cursor, limit).await
        })))
    }

    async fn take(&mut self, client: &Client) -> Result<PullPage> {
        let request = self.0.take().expect("a pull is in flight");
        request.await.map_err(|e| AgentError::Unreachable {
            url: client.base().to_owned(),
            reason: format!("the pull was interrupted: {e}"),
        })?
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(request) = &self.0 {
            request.abort();
        }
    }
}
