//! The checks behind the cargo-fuzz targets in `fuzz/`: wire decoding, op validation and op
//! application. Each takes arbitrary bytes and panics when a property fails.
//!
//! They live in the main workspace so that `cargo test` replays the committed corpus through
//! exactly the code the fuzzers run (`tests/fuzz_corpus.rs`), on stable and without
//! libFuzzer. The fuzz crate compiles this same file (`#[path]` in `fuzz/src/lib.rs`), so
//! it may use only `fieldsync-proto`, `serde` and `serde_json`.
//!
//! The entry points are the ones the agent and server call: `serde_json` decoding of the
//! request and response bodies, `validate_op` then `authorize`, and `apply_op` with the
//! conflict records, scope moves, views and digests built from its result.

use std::collections::BTreeMap;
use std::fmt::Debug;

use fieldsync_proto::apply::{apply_op, conflict_entity, conflict_id, Applied};
use fieldsync_proto::error::ErrorBody;
use fieldsync_proto::limits::{CLOCK_SKEW_MS_MAX, OP_FIELDS_MAX};
use fieldsync_proto::schema::{FieldType, Owner};
use fieldsync_proto::scope::{self, order_move, order_of, Digester};
use fieldsync_proto::validate::{authorize, validate_op, Target};
use fieldsync_proto::wire::{
    BlobStatus, CreateOrderRequest, CreatedResponse, DigestResponse, EnrollRequest, EnrollResponse,
    HelloResponse, PullPage, PushRequest, PushResponse, Rejection, SessionRequest, SessionResponse,
};
use fieldsync_proto::{
    view, DeviceId, EntityId, EntityKind, EntityState, FieldState, Hlc, HlcClock, Op, OpKind, Role,
    Version, SERVER_DEVICE,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// A check: panics when a property fails for this input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name, with their checks.
pub const TARGETS: [(&str, Check); 3] = [
    ("wire_decode", wire_decode),
    ("op_validate", op_validate),
    ("op_apply", op_apply),
];

const ROLES: [Role; 3] = [Role::Engineer, Role::Dispatcher, Role::Admin];

/// Every code `validate_op` may refuse with.
const VALIDATE_CODES: &[&str] = &[
    "invalid_id",
    "empty_op",
    "too_many_fields",
    "not_creator",
    "invalid_base",
    "missing_field",
    "unknown_field",
    "not_owner",
    "immutable_field",
    "invalid_value",
];

// ----- wire_decode --------------------------------------------------------------------------

/// Arbitrary bytes as every body of the sync and dispatcher APIs, decoded the way the
/// server's `JsonBody` and the agent's client decode them (`serde_json::from_slice`; gzip
/// is the server's transport layer, not proto's). Decoding never panics; whatever decodes
/// encodes, decodes again to the same value, and encodes to the same bytes (state lines
/// are stored and digested as their encoding, so it must be canonical).
pub fn wire_decode(data: &[u8]) {
    round_trip::<PushRequest>(data);
    round_trip::<PushResponse>(data);
    round_trip::<PullPage>(data);
    round_trip::<HelloResponse>(data);
    round_trip::<DigestResponse>(data);
    round_trip::<SessionRequest>(data);
    round_trip::<SessionResponse>(data);
    round_trip::<EnrollRequest>(data);
    round_trip::<EnrollResponse>(data);
    round_trip::<CreateOrderRequest>(data);
    round_trip::<CreatedResponse>(data);
    round_trip::<BlobStatus>(data);
    round_trip::<ErrorBody>(data);
    round_trip::<Rejection>(data);
    round_trip::<Op>(data);
    round_trip::<EntityState>(data);
    // The server's pull splices stored state lines in raw; the agent parses the page.
    if let Ok(page) = serde_json::from_slice::<PullPage<Box<RawValue>>>(data) {
        let text = serde_json::to_vec(&page).expect("a raw page encodes");
        let _ = serde_json::from_slice::<PullPage>(&text);
    }
    // What the server does next with a push: validate every op.
    if let Ok(req) = serde_json::from_slice::<PushRequest>(data) {
        for op in &req.ops {
            for role in ROLES {
                let _ = validate_op(op, role);
            }
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(first) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let text = serde_json::to_vec(&first).expect("a decoded body encodes");
    let again: T = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{} re-encoded as {} does not decode: {e}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(
        first,
        again,
        "{} changed through its encoding {}",
        std::any::type_name::<T>(),
        String::from_utf8_lossy(&text)
    );
    let text2 = serde_json::to_vec(&again).expect("encodes");
    assert_eq!(
        String::from_utf8_lossy(&text),
        String::from_utf8_lossy(&text2),
        "{} has no canonical encoding",
        std::any::type_name::<T>()
    );
}

// ----- op_validate --------------------------------------------------------------------------

/// An op through validation and authorisation, for every role. Input starting with `{` is
/// JSON (an op or a push body, as devices send them); anything else builds ops from the
/// bytes with the schema in hand, so most of them get past the first checks.
pub fn op_validate(data: &[u8]) {
    if data.first() == Some(&b'{') {
        if let Ok(op) = serde_json::from_slice::<Op>(data) {
            check_op(&op);
        }
        if let Ok(req) = serde_json::from_slice::<PushRequest>(data) {
            req.ops.iter().for_each(check_op);
        }
        return;
    }
    let mut g = Gen::new(data);
    for _ in 0..16 {
        if g.is_empty() {
            break;
        }
        let op = g.op(&EntityKind::ALL, None);
        check_op(&op);
    }
}

fn check_op(op: &Op) {
    let results = ROLES.map(|role| validate_op(op, role));
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            VALIDATE_CODES.contains(&e.code.as_str()),
            "unexpected code {e}"
        );
        assert!(!e.message.is_empty());
    }
    // Admins may write whatever an engineer or a dispatcher may.
    if results[0].is_ok() || results[1].is_ok() {
        assert_eq!(
            results[2],
            Ok(()),
            "admin refused what another role may write: {op:?}"
        );
    }
    for (role, result) in ROLES.into_iter().zip(&results) {
        if result.is_err() {
            continue;
        }
        let spec = op.kind.spec();
        assert!(!op.fields.is_empty() && op.fields.len() <= OP_FIELDS_MAX);
        assert!(EntityId::is_valid(op.id.as_str()));
        for name in op.fields.keys() {
            let field = spec.field(name).expect("a valid op writes schema fields");
            assert!(field.owner != Owner::System && field.owner.allows(role));
        }
        // The agent stores the op as JSON and pushes it; the server decodes it and
        // validates again. It must arrive as it was, and pass again.
        let text = serde_json::to_vec(op).expect("an op encodes");
        let back: Op = serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!(
                "valid op {} does not decode: {e}",
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(&back, op, "op changed through its push body");
        assert_eq!(validate_op(&back, role), Ok(()));
        for exists in [false, true] {
            for in_scope in [false, true] {
                let got = authorize(op, role, Target { exists, in_scope }).map_err(|e| e.code);
                let want = match (op.op, exists) {
                    (OpKind::Create, true) => Err("already_exists"),
                    (OpKind::Set, false) => Err("not_found"),
                    _ if role == Role::Engineer && !in_scope => Err("out_of_scope"),
                    _ => Ok(()),
                };
                assert_eq!(got, want.map_err(str::to_owned), "{role:?} {op:?}");
            }
        }
        let applied = apply_op(None, op, 1, "u1");
        canonical_line(&applied.state);
    }
}

// ----- op_apply -----------------------------------------------------------------------------

/// Entities the applied ops share, so that they collide: kinds repeat to weigh orders.
const APPLY_KINDS: [EntityKind; 6] = [
    EntityKind::WorkOrder,
    EntityKind::WorkOrder,
    EntityKind::Note,
    EntityKind::Site,
    EntityKind::Photo,
    EntityKind::Conflict,
];
const APPLY_IDS: [&str; 3] = ["w1", "w2", "n1"];
const DEVICES: u32 = 4;
const APPLY_OPS_MAX: usize = 32;

/// Ops from up to four devices (device 0 is the server's console), each device's clock
/// strictly increasing so every version is one write, applied the way the server does and
/// checked step by step; then the merge laws: another delivery order, a second delivery of
/// everything, and two replicas that saw disjoint halves joined, all give the same states
/// and digest.
pub fn op_apply(data: &[u8]) {
    let mut g = Gen::new(data);
    let seed = g.u64();
    // The server's wall clock, and where each device's clock starts around it.
    let now_ms = 1_700_000_000_000 + u64::from(g.u16()) * 1_000;
    let start = Hlc::from_millis(now_ms - 3_600_000).0;
    let mut clocks: Vec<u64> = (0..DEVICES).map(|_| start + u64::from(g.byte())).collect();
    let mut seqs = vec![0u64; DEVICES as usize];
    // Versions written so far per (kind, id, field), for bases.
    let mut written: BTreeMap<(EntityKind, String, String), Vec<Version>> = BTreeMap::new();
    let mut ops: Vec<(Op, DeviceId)> = Vec::new();
    while !g.is_empty() && ops.len() < APPLY_OPS_MAX {
        let dev = g.below(DEVICES as usize) as DeviceId;
        let mut op = g.op(&APPLY_KINDS, Some(&APPLY_IDS));
        let step = match g.byte() % 4 {
            0 => 1,
            1 => 1 + u64::from(g.byte()),
            2 => Hlc::from_millis(u64::from(g.byte()) * 1_000).0,
            _ => Hlc::from_millis(u64::from(g.u16()) * 60_000).0,
        }
        .max(1);
        let clock = &mut clocks[dev as usize];
        *clock += step;
        op.hlc = Hlc(*clock);
        seqs[dev as usize] += 1;
        op.seq = seqs[dev as usize];
        op.base.clear();
        let names: Vec<String> = op.fields.keys().cloned().collect();
        for name in names {
            let seen = written.get(&(op.kind, op.id.0.clone(), name.clone()));
            let pick = match (g.byte() % 4, seen) {
                (2, Some(vs)) => vs.iter().max().copied(),
                (3, Some(vs)) => Some(vs[g.below(vs.len())]),
                _ => None,
            };
            if let Some(v) = pick {
                op.base.insert(name.clone(), v);
            }
            written
                .entry((op.kind, op.id.0.clone(), name))
                .or_default()
                .push(op.version(dev));
        }
        ops.push((op, dev));
    }
    let author = |dev: DeviceId| {
        if dev == SERVER_DEVICE {
            "server".to_owned()
        } else {
            format!("u{dev}")
        }
    };
    type States = BTreeMap<(EntityKind, EntityId), EntityState>;
    let apply_all = |states: &mut States, order: &[usize]| {
        for &i in order {
            let (op, dev) = &ops[i];
            let key = (op.kind, op.id.clone());
            let applied = apply_op(states.get(&key), op, *dev, &author(*dev));
            states.insert(key, applied.state);
        }
    };

    // The server's order, every step checked.
    let mut server = States::new();
    let mut clock = HlcClock::new(Hlc::from_millis(now_ms - 1_000));
    for (op, dev) in &ops {
        // The server refuses a batch stamped too far ahead before its clock sees it.
        if op.hlc.millis() <= now_ms + CLOCK_SKEW_MS_MAX {
            let before = clock.last();
            let seen = clock.observe(op.hlc, now_ms);
            assert!(seen > before && seen > op.hlc, "clock went back");
        }
        let key = (op.kind, op.id.clone());
        let before = server.get(&key);
        let applied = apply_op(before, op, *dev, &author(*dev));
        check_step(before, op, *dev, &author(*dev), &applied);
        let order = order_of(&applied.state);
        for c in &applied.conflicts {
            let last = clock.last();
            let ver = Version {
                hlc: clock.tick(now_ms),
                dev: SERVER_DEVICE,
            };
            assert!(ver.hlc > last, "clock went back");
            let id = conflict_id(*dev, op.seq, &c.field);
            let entity = conflict_entity(id, c, &applied.state, order.as_ref(), ver);
            assert_eq!(entity.kind, EntityKind::Conflict);
            canonical_line(&entity);
        }
        if op.kind == EntityKind::WorkOrder {
            let m = order_move(before, &applied.state);
            assert!(m.left.is_none() || m.left != m.holder);
            assert!(!m.entered || m.holder.is_some());
            assert!(m.refs_added.iter().all(|r| !m.refs_removed.contains(r)));
        }
        server.insert(key, applied.state);
    }

    // Another order of delivery: the same states.
    let mut rng = SplitMix(seed);
    let mut order: Vec<usize> = (0..ops.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut shuffled = States::new();
    apply_all(&mut shuffled, &order);
    assert_eq!(server, shuffled, "delivery order changed the state");
    assert_eq!(
        scope::digest(server.values()),
        scope::digest(shuffled.values())
    );

    // Everything delivered again: nothing changes.
    for &i in &order {
        let (op, dev) = &ops[i];
        let key = (op.kind, op.id.clone());
        let again = apply_op(shuffled.get(&key), op, *dev, &author(*dev));
        assert!(
            again.changed.is_empty(),
            "re-delivery changed {:?}",
            again.changed
        );
        assert_eq!(Some(&again.state), shuffled.get(&key));
    }

    // Two replicas that saw disjoint halves, joined (a pulled state joined into a local one).
    let (mut left, mut right) = (States::new(), States::new());
    let halves: Vec<bool> = order.iter().map(|_| rng.next() & 1 == 0).collect();
    let (l, r): (Vec<usize>, Vec<usize>) = (0..ops.len()).partition(|&i| halves[i]);
    apply_all(&mut left, &l);
    apply_all(&mut right, &r);
    for (key, state) in right {
        match left.remove(&key) {
            Some(mine) => left.insert(key, mine.joined(&state)),
            None => left.insert(key, state),
        };
    }
    assert_eq!(
        server, left,
        "the join of two replicas differs from the server"
    );

    // Stored lines are canonical, and the streaming digest is the digest.
    let mut lines: Vec<String> = server.values().map(canonical_line).collect();
    lines.sort_unstable();
    let mut d = Digester::default();
    lines.iter().for_each(|l| d.line(l));
    assert_eq!(d.finish(), scope::digest(server.values()));

    // The views people read.
    for order in server.values().filter(|s| s.kind == EntityKind::WorkOrder) {
        let v = view::order_view(order, server.values());
        serde_json::to_vec(&v).expect("a view encodes");
        let _ = scope::order_refs(order);
    }
}

/// One `apply_op` against its specification: per field, the greater version wins;
/// `changed` lists exactly the fields that changed; a conflict is recorded exactly when the
/// author had not seen the current write and the values differ, with the winner held.
fn check_step(before: Option<&EntityState>, op: &Op, dev: DeviceId, author: &str, got: &Applied) {
    let ver = op.version(dev);
    let mut want = before
        .cloned()
        .unwrap_or_else(|| EntityState::new(op.kind, op.id.clone()));
    let mut changed = Vec::new();
    for (name, v) in &op.fields {
        let incoming = FieldState {
            v: v.clone(),
            ver,
            by: author.to_owned(),
        };
        let prev = before.and_then(|b| b.fields.get(name));
        let concurrent =
            prev.is_some_and(|p| op.base.get(name) != Some(&p.ver) && p.v != *v && p.ver != ver);
        let raised: Vec<_> = got.conflicts.iter().filter(|c| c.field == *name).collect();
        assert_eq!(
            raised.len(),
            usize::from(concurrent),
            "conflicts on {name}: {raised:?}"
        );
        if let (Some(c), Some(p)) = (raised.first(), prev) {
            let (w, l) = if ver > p.ver {
                (&incoming, p)
            } else {
                (p, &incoming)
            };
            assert!(c.winner.ver > c.loser.ver);
            assert_eq!((&c.winner, &c.loser), (w, l));
        }
        if prev.is_none_or(|p| p.ver < ver) {
            want.fields.insert(name.clone(), incoming);
            changed.push(name.clone());
        }
    }
    assert_eq!(got.state, want, "apply_op result");
    assert_eq!(got.changed, changed);
    for c in &got.conflicts {
        assert_eq!(got.state.fields.get(&c.field), Some(&c.winner));
    }
}

/// The state as the stores keep it: one JSON line, which must decode to the same state and
/// encode to the same line, or replicas holding the same state would digest differently.
fn canonical_line(s: &EntityState) -> String {
    let line = serde_json::to_string(s).expect("a state encodes");
    let back: EntityState = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("state line {line} does not decode: {e}"));
    assert_eq!(&back, s, "state changed through its stored line {line}");
    assert_eq!(
        serde_json::to_string(&back).expect("encodes"),
        line,
        "state line is not canonical"
    );
    line
}

// ----- building values from bytes -----------------------------------------------------------

/// Reads choices off the fuzz input; an exhausted input reads as zeros.
struct Gen<'a> {
    data: &'a [u8],
}

impl<'a> Gen<'a> {
    fn new(data: &'a [u8]) -> Self {
        Gen { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.byte());
        u64::from_le_bytes(b)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// Up to `max_len` input bytes, as (lossy) UTF-8.
    fn raw_text(&mut self, max_len: usize) -> String {
        let n = self.below(max_len + 1).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(head).into_owned()
    }

    fn text(&mut self, max_chars: usize) -> String {
        match self.byte() % 8 {
            0 => String::new(),
            1 => "x".repeat(max_chars),
            2 => "x".repeat(max_chars + 1),
            3 => "é".repeat(max_chars),
            4 => "bell\u{7}".to_owned(),
            5 => "line one\nline two\tend".to_owned(),
            _ => self.raw_text(40),
        }
    }

    fn id(&mut self) -> String {
        const IDS: [&str; 9] = [
            "w1",
            "w2",
            "c1",
            "s1",
            "a1",
            "n1",
            "p_1",
            "u1",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ];
        match self.byte() % 16 {
            9 => String::new(),
            10 => "../etc".to_owned(),
            11 => "a".repeat(64),
            12 => "a".repeat(65),
            13 => "é".to_owned(),
            14 | 15 => self.raw_text(70),
            i => IDS[usize::from(i)].to_owned(),
        }
    }

    fn float(&mut self) -> Value {
        serde_json::Number::from_f64(f64::from_bits(self.u64()))
            .map(Value::Number)
            .unwrap_or(json!(0.5))
    }

    fn hex64(&mut self) -> String {
        (0..32).map(|_| format!("{:02x}", self.byte())).collect()
    }

    fn any_value(&mut self, depth: u8) -> Value {
        match self.byte() % if depth == 0 { 6 } else { 8 } {
            0 => Value::Null,
            1 => json!(self.byte() & 1 == 1),
            2 => json!(self.u64() as i64),
            3 => json!(self.u64()),
            4 => self.float(),
            5 => json!(self.text(16)),
            6 => Value::Array(
                (0..self.below(4))
                    .map(|_| self.any_value(depth - 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.raw_text(8), self.any_value(depth - 1)))
                    .collect(),
            ),
        }
    }

    /// A value for a field of type `ty`: usually of the type, near its edges, sometimes
    /// just past them or of another type.
    fn typed(&mut self, ty: FieldType) -> Value {
        match ty {
            FieldType::Text { max_chars } => json!(self.text(max_chars)),
            FieldType::Int { min, max } => match self.byte() % 8 {
                0 => json!(min),
                1 => json!(max),
                2 => json!(min.saturating_sub(1)),
                3 => json!(max.saturating_add(1)),
                4 => json!(self.u64()),
                5 => json!(2.0),
                6 => json!("2"),
                _ => {
                    let span = i128::from(max) - i128::from(min) + 1;
                    let n = i128::from(min) + i128::from(self.u16()) % span;
                    json!(i64::try_from(n).unwrap_or(min))
                }
            },
            FieldType::Number => match self.byte() % 6 {
                0 | 1 => self.float(),
                2 => json!(51.507_351),
                3 => json!(-0.127_758),
                4 => json!(u64::MAX),
                _ => json!("51.5"),
            },
            FieldType::Bool => match self.byte() % 3 {
                0 => json!(true),
                1 => json!(false),
                _ => json!(1),
            },
            FieldType::Time => match self.byte() % 5 {
                0 => json!(1_700_000_000_000u64),
                1 => json!(self.u64()),
                2 => json!(-1),
                3 => json!(1.7e12),
                _ => json!(0),
            },
            FieldType::Enum(values) => match self.byte() % 6 {
                0 => json!("done"),
                _ => json!(self.pick(values)),
            },
            FieldType::Ref(_) => json!(self.id()),
            FieldType::BlobHash => match self.byte() % 4 {
                0 | 1 => json!(self.hex64()),
                2 => json!(self.hex64().to_uppercase()),
                _ => json!(self.raw_text(70)),
            },
            FieldType::FileName { max_chars } => match self.byte() % 8 {
                0 => json!("."),
                1 => json!(".."),
                2 => json!("a/b.jpg"),
                3 => json!("a\\b.jpg"),
                4 => json!("x".repeat(max_chars + 1)),
                5 => json!("IMG_0001.JPG"),
                6 => json!(""),
                _ => json!(self.raw_text(40)),
            },
            FieldType::Json | FieldType::SlaTerms => self.any_value(3),
            FieldType::Intervals { .. } => match self.byte() % 4 {
                0 => json!([[1, 2], [3, null]]),
                1 => json!([[5, 2]]),
                2 => json!([]),
                _ => self.any_value(3),
            },
        }
    }

    fn value(&mut self, ty: Option<FieldType>) -> Value {
        match (self.byte() % 8, ty) {
            (0, _) | (_, None) => self.any_value(2),
            (1, _) => Value::Null,
            (_, Some(ty)) => self.typed(ty),
        }
    }

    /// A field name for `kind`: mostly its own, sometimes another kind's or none at all.
    fn field_for(&mut self, kind: EntityKind) -> (String, Option<FieldType>) {
        let spec = match self.byte() % 10 {
            0 => self.pick(&EntityKind::ALL).spec(),
            1 => return (self.raw_text(12), None),
            _ => kind.spec(),
        };
        let f = self.pick(spec.fields);
        (f.name.to_owned(), Some(f.ty))
    }

    /// An op on one of `kinds`, with an id from `ids` (any id when `None`).
    fn op(&mut self, kinds: &[EntityKind], ids: Option<&[&str]>) -> Op {
        let kind = self.pick(kinds);
        let op = if self.byte() & 1 == 0 {
            OpKind::Create
        } else {
            OpKind::Set
        };
        let id = match ids {
            Some(ids) => self.pick(ids).to_owned(),
            None => self.id(),
        };
        let mut fields = BTreeMap::new();
        if op == OpKind::Create && !self.byte().is_multiple_of(4) {
            for f in kind.spec().fields.iter().filter(|f| f.required) {
                let v = self.typed(f.ty);
                fields.insert(f.name.to_owned(), v);
            }
        }
        match self.byte() {
            255 => {
                for i in 0..=OP_FIELDS_MAX {
                    fields.insert(format!("f{i}"), json!(i));
                }
            }
            b => {
                for _ in 0..b % 4 {
                    let (name, ty) = self.field_for(kind);
                    let v = self.value(ty);
                    fields.insert(name, v);
                }
            }
        }
        let mut base = BTreeMap::new();
        if self.byte().is_multiple_of(4) {
            let name = match fields.keys().next() {
                Some(k) if self.byte() & 1 == 0 => k.clone(),
                _ => self.raw_text(8),
            };
            let ver = Version {
                hlc: Hlc(self.u64()),
                dev: u32::from(self.byte()),
            };
            base.insert(name, ver);
        }
        Op {
            seq: self.u64(),
            kind,
            id: EntityId(id),
            hlc: Hlc(self.u64()),
            op,
            fields,
            base,
        }
    }
}

/// splitmix64, for the delivery orders.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ----- seeds --------------------------------------------------------------------------------

/// Realistic inputs for each target, built from proto's types the way the agent and server
/// build them: `(target, name, bytes)`. The replay test runs them too, so they stay checked
/// whether or not corpus minimisation keeps them.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let ops = sample_ops();
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_owned(), bytes));
    };
    for (name, op, _) in &ops {
        add("op_validate", name, enc(op));
        add("wire_decode", &format!("op-{name}"), enc(op));
    }
    let push = PushRequest {
        ops: ops.iter().map(|(_, op, _)| op.clone()).collect(),
    };
    add("op_validate", "push", enc(&push));
    add("wire_decode", "push", enc(&push));

    // The server's state after those ops, as a pull page.
    let mut states: BTreeMap<(EntityKind, EntityId), EntityState> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (_, op, dev) in &ops {
        let key = (op.kind, op.id.clone());
        let applied = apply_op(states.get(&key), op, *dev, &format!("u{dev}"));
        for c in &applied.conflicts {
            let ver = Version {
                hlc: Hlc(op.hlc.0 + 1),
                dev: SERVER_DEVICE,
            };
            conflicts.push(conflict_entity(
                conflict_id(*dev, op.seq, &c.field),
                c,
                &applied.state,
                order_of(&applied.state).as_ref(),
                ver,
            ));
        }
        states.insert(key, applied.state);
    }
    let hlc = states
        .values()
        .filter_map(EntityState::max_version)
        .map(|v| v.hlc)
        .max()
        .unwrap_or_default();
    let page = PullPage {
        entities: states.values().cloned().chain(conflicts).collect(),
        left: vec![fieldsync_proto::wire::EntityRef {
            kind: EntityKind::Note,
            id: "n0".into(),
        }],
        cursor: 42,
        more: false,
        hlc,
        server_time_ms: 1_700_000_060_000,
    };
    add("wire_decode", "pull-page", enc(&page));
    add(
        "wire_decode",
        "push-response",
        enc(&PushResponse {
            acked_seq: 7,
            rejected: vec![Rejection {
                seq: 6,
                code: "out_of_scope".into(),
                message: "cannot write work_order w2: it is not in your assigned work".into(),
            }],
            server_time_ms: 1_700_000_060_000,
            parked: vec![5],
        }),
    );
    add(
        "wire_decode",
        "hello",
        enc(&HelloResponse {
            protocol: 1,
            epoch: 1_700_000_000_123,
            acked_seq: 7,
            server_time_ms: 1_700_000_060_000,
        }),
    );
    add(
        "wire_decode",
        "digest",
        enc(&DigestResponse {
            entities: 5,
            digest: scope::digest(states.values()),
            cursor: 42,
        }),
    );
    add(
        "wire_decode",
        "session",
        enc(&SessionRequest {
            user: "dana".into(),
            password: "dispatch-pass".into(),
        }),
    );
    add(
        "wire_decode",
        "session-response",
        enc(&SessionResponse {
            token: "t0k3n".into(),
            role: Role::Dispatcher,
        }),
    );
    add(
        "wire_decode",
        "enroll",
        enc(&EnrollRequest {
            user: "eve".into(),
            password: "field-pass".into(),
            device_name: Some("eve's laptop".into()),
        }),
    );
    add(
        "wire_decode",
        "enroll-response",
        enc(&EnrollResponse {
            device_id: 3,
            token: "d3v1c3".into(),
            user: "eve".into(),
            role: Role::Engineer,
            protocol: 1,
            server_time_ms: 1_700_000_000_000,
        }),
    );
    add(
        "wire_decode",
        "create-order",
        enc(&CreateOrderRequest {
            description: "Boiler pressure low".into(),
            priority: 2,
            customer_id: Some("c1".into()),
            site_id: Some("s1".into()),
            asset_id: None,
            assignee: Some("eve".into()),
            scheduled_start: Some(1_700_000_000_000),
            scheduled_end: None,
            channel: Some("phone".into()),
            reporter: Some("Ann, 555-0100".into()),
            reported_at: None,
            contract_id: None,
            work_type: Some("repair".into()),
        }),
    );
    add(
        "wire_decode",
        "created",
        enc(&CreatedResponse { id: "w9".into() }),
    );
    add(
        "wire_decode",
        "blob-status",
        enc(&BlobStatus {
            hash: "ab".repeat(32),
            size: Some(2_000_000),
            held: 1_048_576,
            verified: false,
            size_max: 50 << 20,
            stored_ms: None,
        }),
    );
    let mut err = ErrorBody::new("clock_skew", "op 3 is stamped 400 s ahead");
    err.error.details = Some(json!({"seq": 3, "skew_ms": 400_000, "bound_ms": 300_000}));
    add("wire_decode", "error", enc(&err));

    // Byte-built inputs for the structured modes: fixed pseudo-random bytes.
    let mut rng = SplitMix(0x5eed);
    for i in 0..8 {
        let len = 64 + 64 * i;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        add("op_apply", &format!("random-{i}"), bytes.clone());
        // A leading '{' would select the JSON mode.
        let mut b = bytes;
        if b[0] == b'{' {
            b[0] = 0;
        }
        add("op_validate", &format!("random-{i}"), b);
    }
    out
}

/// A dispatcher's and two engineers' day on one order: creates, concurrent edits with and
/// without the base they saw, records, a photo, a conflict resolution. `(name, op, device)`.
fn sample_ops() -> Vec<(&'static str, Op, DeviceId)> {
    let t0 = Hlc::from_millis(1_700_000_000_000).0;
    let op = |seq: u64,
              kind: EntityKind,
              id: &str,
              at: u64,
              kind_op: OpKind,
              fields: Value,
              base: Vec<(&str, Version)>| Op {
        seq,
        kind,
        id: id.into(),
        hlc: Hlc(t0 + at),
        op: kind_op,
        fields: serde_json::from_value(fields).expect("fields"),
        base: base.into_iter().map(|(f, v)| (f.to_owned(), v)).collect(),
    };
    let seen = |at: u64, dev: DeviceId| Version {
        hlc: Hlc(t0 + at),
        dev,
    };
    vec![
        (
            "create-customer",
            op(
                1,
                EntityKind::Customer,
                "c1",
                1,
                OpKind::Create,
                json!({"name": "Acme Dairy", "tier": "gold", "phone": "+44 20 7946 0000"}),
                vec![],
            ),
            1,
        ),
        (
            "create-site",
            op(
                2,
                EntityKind::Site,
                "s1",
                2,
                OpKind::Create,
                json!({"customer_id": "c1", "name": "Plant room", "lat": 51.507_351,
                       "lon": -0.127_758, "access_notes": "Key at reception.\nAsk for Bob."}),
                vec![],
            ),
            1,
        ),
        (
            "create-order",
            op(
                3,
                EntityKind::WorkOrder,
                "w1",
                3,
                OpKind::Create,
                json!({"description": "Pump leaking", "priority": 2, "assignee": "eve",
                       "customer_id": "c1", "site_id": "s1", "channel": "phone",
                       "scheduled_start": 1_700_000_360_000u64}),
                vec![],
            ),
            1,
        ),
        (
            "engineer-status",
            op(
                1,
                EntityKind::WorkOrder,
                "w1",
                10,
                OpKind::Set,
                json!({"status": "on-site", "arrived_at": 1_700_000_500_000u64}),
                vec![],
            ),
            3,
        ),
        (
            "engineer-description",
            op(
                2,
                EntityKind::WorkOrder,
                "w1",
                20,
                OpKind::Set,
                json!({"description": "Pump leaking, seal gone"}),
                vec![("description", seen(3, 1))],
            ),
            3,
        ),
        (
            "dispatcher-description",
            op(
                4,
                EntityKind::WorkOrder,
                "w1",
                15,
                OpKind::Set,
                json!({"description": "Pump leaking (urgent)", "priority": 1}),
                vec![("description", seen(3, 1)), ("priority", seen(3, 1))],
            ),
            1,
        ),
        (
            "note",
            op(
                3,
                EntityKind::Note,
                "n1",
                21,
                OpKind::Create,
                json!({"order_id": "w1", "text": "Replaced the mechanical seal."}),
                vec![],
            ),
            3,
        ),
        (
            "part",
            op(
                4,
                EntityKind::PartUsage,
                "p1",
                22,
                OpKind::Create,
                json!({"order_id": "w1", "sku": "SEAL-40", "qty": 1}),
                vec![],
            ),
            3,
        ),
        (
            "photo",
            op(
                5,
                EntityKind::Photo,
                "ph1",
                23,
                OpKind::Create,
                json!({"order_id": "w1", "hash": "0f".repeat(32), "size": 2_345_678,
                       "mime": "image/jpeg", "name": "IMG_0042.JPG",
                       "caption": "old seal", "taken_at": 1_700_000_520_000u64,
                       "lat": 51.507_4, "lon": -0.127_8}),
                vec![],
            ),
            3,
        ),
        (
            "void-note",
            op(
                6,
                EntityKind::Note,
                "n1",
                24,
                OpKind::Set,
                json!({"voided": true}),
                vec![("voided", seen(21, 3))],
            ),
            3,
        ),
        (
            "second-engineer",
            op(
                1,
                EntityKind::WorkOrder,
                "w1",
                12,
                OpKind::Set,
                json!({"status": "en-route", "fault_code": "SEAL"}),
                vec![],
            ),
            4,
        ),
        (
            "complete",
            op(
                7,
                EntityKind::WorkOrder,
                "w1",
                30,
                OpKind::Set,
                json!({"status": "completed", "resolution": "Seal replaced, tested 2 h.",
                       "completed_at": 1_700_000_900_000u64, "signature": "ab".repeat(32)}),
                vec![("status", seen(12, 4))],
            ),
            3,
        ),
        (
            "resolve-conflict",
            op(
                5,
                EntityKind::Conflict,
                "cf-3-2-description",
                40,
                OpKind::Set,
                json!({"resolved": true, "resolution": {"value": "Pump leaking, seal gone"},
                       "resolved_by": "dana"}),
                vec![],
            ),
            1,
        ),
    ]
}

/// A seed as a client writes it (pretty, so the corpus files are readable).
fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("a seed encodes")
}
