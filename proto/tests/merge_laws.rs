//! Property tests for the merge laws of `fieldsync-proto`.
//!
//! 1. The per-field join (`merge_field`, `merge`, `joined`) is a join-semilattice:
//!    commutative, associative, idempotent, and equal to "per field, the greatest version".
//! 2. `apply_op` converges: replicas that receive the same ops in any order, in causal order
//!    or with re-deliveries end with the same state, equal to the reference join of all
//!    writes; every genuinely lost write is recorded as a conflict loser on every replica.
//! 3. A conflict's winner has a strictly greater version than its loser, and the winner is
//!    what the merged state holds.
//! 4. `apply_op` is idempotent: re-applying an op changes nothing.
//!
//! Ops are built the way devices build them: per-device dense `seq`, a per-device HLC that
//! only moves forward and past every version the author observed, `base` versions taken from
//! writes that already happened, values derived from the version (one version = one write),
//! and every op passes `validate_op`.

use std::collections::{BTreeMap, BTreeSet};

use fieldsync_proto::apply::{apply_op, conflict_id, ConflictRecord};
use fieldsync_proto::schema::STATUSES;
use fieldsync_proto::validate::validate_op;
use fieldsync_proto::{
    DeviceId, EntityId, EntityKind, EntityState, FieldState, Hlc, Op, OpKind, Role, Version,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

/// Work-order fields the tests write: a shared one, a dispatcher one, an engineer one and an
/// optional one that can be cleared.
const FIELDS: [&str; 4] = ["description", "priority", "status", "assignee"];
/// Fields a work-order create must carry.
const REQUIRED: [&str; 2] = ["description", "priority"];

const CASES: u32 = 1000;

// ----- values derived from versions -------------------------------------------------------

/// The value written by version `ver` to `field`. Deterministic, so equal versions always
/// carry equal values. `description` is unique per version; the others collide on purpose,
/// so that "same value, no conflict" paths are exercised too.
fn value_for(field: &str, ver: Version) -> Value {
    let (h, d) = (ver.hlc.0, u64::from(ver.dev));
    match field {
        "description" => json!(format!("pump {h}.{d}")),
        "priority" => json!(1 + (h + d) % 4),
        "status" => json!(STATUSES[((h * 3 + d) % STATUSES.len() as u64) as usize]),
        "assignee" => {
            if (h + d) % 5 == 0 {
                Value::Null
            } else {
                json!(format!("eng{}", (h + d) % 3))
            }
        }
        other => unreachable!("no field {other}"),
    }
}

fn author_of(dev: DeviceId) -> String {
    format!("u{dev}")
}

fn write(field: &str, hlc: u64, dev: DeviceId) -> FieldState {
    let ver = Version { hlc: Hlc(hlc), dev };
    FieldState {
        v: value_for(field, ver),
        ver,
        by: author_of(dev),
    }
}

// ----- law 1: the join ----------------------------------------------------------------------

/// A work-order state with some of the fields set, versions from a small range so that equal
/// HLCs on different devices and fully equal versions are common.
fn arb_state() -> impl Strategy<Value = EntityState> {
    prop::collection::btree_map(0..FIELDS.len(), (0u64..6, 0u32..3), 0..=FIELDS.len()).prop_map(
        |m| {
            let mut s = EntityState::new(EntityKind::WorkOrder, "w0".into());
            for (i, (h, d)) in m {
                s.fields
                    .insert(FIELDS[i].to_owned(), write(FIELDS[i], h, d));
            }
            s
        },
    )
}

/// The reference join: per field, the write with the greatest `(hlc, dev)`.
fn reference_join(states: &[&EntityState]) -> EntityState {
    let mut out = EntityState::new(EntityKind::WorkOrder, "w0".into());
    for f in FIELDS {
        let best = states
            .iter()
            .filter_map(|s| s.fields.get(f))
            .max_by_key(|fs| (fs.ver.hlc.0, fs.ver.dev));
        if let Some(fs) = best {
            out.fields.insert(f.to_owned(), fs.clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn join_is_commutative(a in arb_state(), b in arb_state()) {
        prop_assert_eq!(a.clone().joined(&b), b.clone().joined(&a));
    }

    #[test]
    fn join_is_associative(a in arb_state(), b in arb_state(), c in arb_state()) {
        let left = a.clone().joined(&b).joined(&c);
        let right = a.clone().joined(&b.clone().joined(&c));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn join_is_idempotent(a in arb_state(), b in arb_state()) {
        prop_assert_eq!(a.clone().joined(&a), a.clone());
        // Absorbing: joining something already joined in changes nothing.
        let ab = a.clone().joined(&b);
        let mut again = ab.clone();
        prop_assert!(again.merge(&b).is_empty());
        prop_assert_eq!(again, ab);
    }

    /// The join is exactly "per field, the greatest version" (so it is the least upper bound),
    /// and `merge` reports exactly the fields it replaced.
    #[test]
    fn join_is_per_field_max_and_reports_its_changes(a in arb_state(), b in arb_state()) {
        let mut merged = a.clone();
        let changed = merged.merge(&b);
        prop_assert_eq!(&merged, &reference_join(&[&a, &b]));
        let expected: Vec<String> = merged
            .fields
            .iter()
            .filter(|(k, v)| a.fields.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        prop_assert_eq!(changed, expected);
    }

    /// Field-level: merging a set of writes into a field in any order gives the same field,
    /// and `merge_field` returns true exactly when the stored write changed.
    #[test]
    fn merge_field_is_order_independent(
        writes in prop::collection::vec((0u64..6, 0u32..3), 1..8),
        perm_seed in any::<u64>(),
    ) {
        let fs: Vec<FieldState> = writes.iter().map(|&(h, d)| write("status", h, d)).collect();
        let mut shuffled = fs.clone();
        shuffle(&mut shuffled, &mut Rng(perm_seed));
        let mut one = EntityState::new(EntityKind::WorkOrder, "w0".into());
        let mut two = one.clone();
        for (x, y) in fs.iter().zip(&shuffled) {
            let before = one.fields.get("status").cloned();
            let did = one.merge_field("status", x);
            prop_assert_eq!(did, before.as_ref() != one.fields.get("status"));
            two.merge_field("status", y);
        }
        prop_assert_eq!(&one, &two);
        let max = fs.iter().max_by_key(|f| (f.ver.hlc.0, f.ver.dev)).unwrap();
        prop_assert_eq!(one.fields.get("status"), Some(max));
    }
}

// ----- scenarios of ops ---------------------------------------------------------------------

/// One op delivered to a replica, with what the server knows from the device token.
#[derive(Clone, Debug)]
struct Delivered {
    op: Op,
    dev: DeviceId,
    author: String,
}

/// Ops in generation order, which is a causal order: every op's bases, its entity's create
/// and its device's earlier ops come before it.
#[derive(Clone, Debug)]
struct Scenario {
    ops: Vec<Delivered>,
    /// Direct causal predecessors of each op (indices into `ops`).
    deps: Vec<BTreeSet<usize>>,
}

/// A create of work order `w{i}` by `dev`, also setting the optional fields in `mask`.
type CreateSpec = (DeviceId, u8, u8);

/// A set by `dev` on entity `entity % n` writing the fields in `mask` (one field if empty);
/// `picks[i]` chooses field i's base among the versions already written; `bump` spaces HLCs.
#[derive(Clone, Debug)]
struct Step {
    dev: DeviceId,
    entity: usize,
    mask: u8,
    picks: [u8; 4],
    bump: u8,
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        1u32..=4,
        0usize..2,
        0u8..16,
        prop::array::uniform4(any::<u8>()),
        0u8..3,
    )
        .prop_map(|(dev, entity, mask, picks, bump)| Step {
            dev,
            entity,
            mask,
            picks,
            bump,
        })
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=2,
        prop::collection::vec((1u32..=4, 0u8..4, 0u8..3), 2),
        prop::collection::vec(arb_step(), 1..=16),
    )
        .prop_map(|(n, creates, steps)| build(&creates[..n], &steps))
}

#[derive(Default)]
struct Builder {
    ops: Vec<Delivered>,
    deps: Vec<BTreeSet<usize>>,
    /// Per device: last HLC, last seq, index of its last op.
    clock: BTreeMap<DeviceId, u64>,
    seq: BTreeMap<DeviceId, u64>,
    last_op: BTreeMap<DeviceId, usize>,
    /// Per (entity, field): the versions written so far, with the op that wrote them.
    written: BTreeMap<(usize, &'static str), Vec<(Version, usize)>>,
    created: BTreeMap<usize, usize>,
}

impl Builder {
    /// Add an op by `dev` on entity `e`, writing `fields` with the given bases (each base
    /// being an earlier write to that field, whose op becomes a dependency).
    fn push(
        &mut self,
        dev: DeviceId,
        e: usize,
        kind: OpKind,
        fields: &[(&'static str, Option<(Version, usize)>)],
        bump: u8,
    ) {
        let seen = fields
            .iter()
            .filter_map(|(_, b)| b.map(|(v, _)| v.hlc.0))
            .max()
            .unwrap_or(0);
        // The device's clock moves past its own last event and everything it observed.
        let hlc = self.clock.get(&dev).copied().unwrap_or(0).max(seen) + 1 + u64::from(bump);
        self.clock.insert(dev, hlc);
        let seq = self.seq.entry(dev).or_insert(0);
        *seq += 1;
        let ver = Version { hlc: Hlc(hlc), dev };
        let mut deps = BTreeSet::new();
        deps.extend(self.last_op.get(&dev).copied());
        deps.extend(self.created.get(&e).copied());
        deps.extend(fields.iter().filter_map(|(_, b)| b.map(|(_, i)| i)));
        let idx = self.ops.len();
        let op = Op {
            seq: *seq,
            kind: EntityKind::WorkOrder,
            id: EntityId(format!("w{e}")),
            hlc: Hlc(hlc),
            op: kind,
            fields: fields
                .iter()
                .map(|(f, _)| ((*f).to_owned(), value_for(f, ver)))
                .collect(),
            base: fields
                .iter()
                .filter_map(|(f, b)| b.map(|(v, _)| ((*f).to_owned(), v)))
                .collect(),
        };
        for (f, _) in fields {
            self.written.entry((e, f)).or_default().push((ver, idx));
        }
        if kind == OpKind::Create {
            self.created.insert(e, idx);
        }
        self.last_op.insert(dev, idx);
        self.ops.push(Delivered {
            op,
            dev,
            author: author_of(dev),
        });
        self.deps.push(deps);
    }
}

fn build(creates: &[CreateSpec], steps: &[Step]) -> Scenario {
    let mut b = Builder::default();
    for (e, &(dev, mask, bump)) in creates.iter().enumerate() {
        let mut fields: Vec<(&'static str, Option<(Version, usize)>)> =
            REQUIRED.iter().map(|f| (*f, None)).collect();
        for (bit, f) in ["status", "assignee"].into_iter().enumerate() {
            if mask & (1 << bit) != 0 {
                fields.push((f, None));
            }
        }
        b.push(dev, e, OpKind::Create, &fields, bump);
    }
    for s in steps {
        let e = s.entity % creates.len();
        let chosen: Vec<&'static str> = if s.mask == 0 {
            vec![FIELDS[usize::from(s.picks[0]) % FIELDS.len()]]
        } else {
            (0..FIELDS.len())
                .filter(|i| s.mask & (1 << i) != 0)
                .map(|i| FIELDS[i])
                .collect()
        };
        let fields: Vec<_> = chosen
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                let mut options: Vec<Option<(Version, usize)>> = b
                    .written
                    .get(&(e, f))
                    .map(|w| w.iter().copied().map(Some).collect())
                    .unwrap_or_default();
                // "Absent: the field was unset" is only possible if the create did not set it:
                // whoever writes has seen the entity, hence its create.
                let set_at_create = b.ops[b.created[&e]].op.fields.contains_key(f);
                if !set_at_create {
                    options.push(None);
                }
                (f, options[usize::from(s.picks[i]) % options.len()])
            })
            .collect();
        b.push(s.dev, e, OpKind::Set, &fields, s.bump);
    }
    Scenario {
        ops: b.ops,
        deps: b.deps,
    }
}

// ----- delivery orders ----------------------------------------------------------------------

/// splitmix64: a tiny deterministic RNG seeded by proptest.
struct Rng(u64);

impl Rng {
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

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// A random linear extension of the causal order: what the server can see (each device's
/// ops in seq order; an op only after the writes its author saw, and after its create).
fn causal_order(s: &Scenario, seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    let n = s.ops.len();
    let mut indeg: Vec<usize> = s.deps.iter().map(BTreeSet::len).collect();
    let mut succ = vec![Vec::new(); n];
    for (i, ds) in s.deps.iter().enumerate() {
        for &d in ds {
            succ[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while !ready.is_empty() {
        let i = ready.swap_remove(rng.below(ready.len()));
        out.push(i);
        for &j in &succ[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.push(j);
            }
        }
    }
    assert_eq!(out.len(), n, "dependencies form a DAG");
    out
}

/// Any order at all, with `dups` re-deliveries of random ops mixed in.
fn any_order(n: usize, dups: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..dups {
        order.push(rng.below(n));
    }
    shuffle(&mut order, &mut rng);
    order
}

// ----- replicas -----------------------------------------------------------------------------

/// A replica: entity states, and the conflict records it keeps (like the server: keyed by
/// `conflict_id`, the first record for an id wins).
#[derive(Debug, Default)]
struct Replica {
    states: BTreeMap<EntityId, EntityState>,
    kept: BTreeMap<EntityId, (EntityId, ConflictRecord)>,
}

/// Apply one op to the replica, checking the laws that hold for every single application:
/// `changed` is exactly what changed, nothing is lost, and every conflict is well formed
/// (law 3).
fn deliver(rep: &mut Replica, d: &Delivered) -> Result<(), TestCaseError> {
    let before = rep.states.get(&d.op.id).cloned();
    let a = apply_op(before.as_ref(), &d.op, d.dev, &d.author);

    prop_assert_eq!((a.state.kind, &a.state.id), (d.op.kind, &d.op.id));
    let old_fields = before.as_ref().map(|b| &b.fields);
    for name in old_fields.into_iter().flat_map(|f| f.keys()) {
        prop_assert!(
            a.state.fields.contains_key(name),
            "field {} disappeared",
            name
        );
    }
    let differ: BTreeSet<&str> = a
        .state
        .fields
        .iter()
        .filter(|(k, v)| old_fields.and_then(|f| f.get(*k)) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    let changed: BTreeSet<&str> = a.changed.iter().map(String::as_str).collect();
    prop_assert_eq!(
        changed.len(),
        a.changed.len(),
        "changed lists a field twice"
    );
    prop_assert_eq!(
        &changed,
        &differ,
        "changed must be exactly the replaced fields"
    );

    let incoming: BTreeMap<&str, FieldState> = d.op.writes(d.dev, &d.author).collect();
    let mut fields_seen = BTreeSet::new();
    for c in &a.conflicts {
        prop_assert!(
            fields_seen.insert(c.field.as_str()),
            "two conflicts on {}",
            c.field
        );
        let Some(inc) = incoming.get(c.field.as_str()) else {
            return Err(TestCaseError::fail(format!(
                "conflict on unwritten field {}",
                c.field
            )));
        };
        let Some(prev) = old_fields.and_then(|f| f.get(&c.field)) else {
            return Err(TestCaseError::fail(format!(
                "conflict on new field {}",
                c.field
            )));
        };
        // Law 3: the winner is strictly greater, and it is what the state now holds.
        prop_assert!(
            c.winner.ver > c.loser.ver,
            "winner {:?} !> loser {:?}",
            c.winner.ver,
            c.loser.ver
        );
        prop_assert_eq!(a.state.fields.get(&c.field), Some(&c.winner));
        prop_assert_ne!(&c.winner.v, &c.loser.v, "a conflict between equal values");
        let pair_ok =
            (&c.winner == inc && &c.loser == prev) || (&c.winner == prev && &c.loser == inc);
        prop_assert!(
            pair_ok,
            "conflict sides are not {{incoming, current}}: {:?}",
            c
        );
        prop_assert_ne!(
            d.op.base.get(&c.field),
            Some(&prev.ver),
            "author saw the current write"
        );
        let id = conflict_id(d.dev, d.op.seq, &c.field);
        rep.kept
            .entry(id)
            .or_insert_with(|| (d.op.id.clone(), c.clone()));
    }
    rep.states.insert(d.op.id.clone(), a.state);
    Ok(())
}

fn run(s: &Scenario, order: &[usize]) -> Result<Replica, TestCaseError> {
    let mut rep = Replica::default();
    for &i in order {
        deliver(&mut rep, &s.ops[i])?;
    }
    Ok(rep)
}

/// Every write in the scenario, per (entity, field).
fn writes_by_field(s: &Scenario) -> BTreeMap<(EntityId, String), Vec<FieldState>> {
    let mut out: BTreeMap<(EntityId, String), Vec<FieldState>> = BTreeMap::new();
    for d in &s.ops {
        for (name, fs) in d.op.writes(d.dev, &d.author) {
            out.entry((d.op.id.clone(), name.to_owned()))
                .or_default()
                .push(fs);
        }
    }
    out
}

/// The state every replica must reach: per entity and field, the greatest write.
fn reference_states(s: &Scenario) -> BTreeMap<EntityId, EntityState> {
    let mut out = BTreeMap::new();
    for ((id, field), ws) in writes_by_field(s) {
        let best = ws.iter().max_by_key(|w| (w.ver.hlc.0, w.ver.dev)).unwrap();
        out.entry(id.clone())
            .or_insert_with(|| EntityState::new(EntityKind::WorkOrder, id))
            .fields
            .insert(field, best.clone());
    }
    out
}

/// No silent loss, and no conflict against the final value. A write is genuinely lost when
/// it is not the final winner of its field, no op was written on top of it (nobody has it as
/// base) and its value is not also written by another write. Each such write must be the
/// loser of a kept conflict on every replica, whatever the delivery order.
fn check_losses(s: &Scenario, rep: &Replica) -> Result<(), TestCaseError> {
    let mut based: BTreeSet<(EntityId, &str, Version)> = BTreeSet::new();
    for d in &s.ops {
        for (f, v) in &d.op.base {
            based.insert((d.op.id.clone(), f.as_str(), *v));
        }
    }
    let reference = reference_states(s);
    for ((id, field), ws) in writes_by_field(s) {
        let fin = reference[&id].fields[&field].ver;
        for x in &ws {
            let lost = x.ver != fin
                && !based.contains(&(id.clone(), field.as_str(), x.ver))
                && ws.iter().filter(|y| y.v == x.v).count() == 1;
            if lost {
                let recorded = rep
                    .kept
                    .values()
                    .any(|(t, c)| *t == id && c.field == field && c.loser == *x);
                prop_assert!(
                    recorded,
                    "lost write {:?} to {}.{} has no conflict",
                    x,
                    id,
                    field
                );
            }
        }
    }
    for (t, c) in rep.kept.values() {
        let fin = reference[t].fields[&c.field].ver;
        prop_assert!(
            c.loser.ver < fin,
            "the final write of {}.{} is a loser",
            t,
            c.field
        );
    }
    Ok(())
}

// ----- law 2: convergence, law 4: idempotence ----------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Five replicas: generation order, two random causal orders (what a server sees) and two
    /// arbitrary orders with re-deliveries (sets before the create included). All end with
    /// the reference state, and all record every genuinely lost write.
    #[test]
    fn apply_op_converges_whatever_the_delivery(
        s in arb_scenario(),
        seeds in prop::array::uniform4(any::<u64>()),
        dups in prop::array::uniform2(0usize..12),
    ) {
        for d in &s.ops {
            prop_assert!(validate_op(&d.op, Role::Admin).is_ok(), "unrealistic op {:?}", d.op);
        }
        let n = s.ops.len();
        let causal = [(0..n).collect::<Vec<_>>(), causal_order(&s, seeds[0]), causal_order(&s, seeds[1])];
        for order in &causal {
            // The protocol never applies a set to an entity the server does not have.
            let mut created = BTreeSet::new();
            for &i in order {
                let op = &s.ops[i].op;
                if op.op == OpKind::Create {
                    created.insert(&op.id);
                }
                prop_assert!(created.contains(&op.id), "set before create in a causal order");
            }
        }
        let orders = causal.into_iter().chain([
            any_order(n, dups[0], seeds[2]),
            any_order(n, dups[1], seeds[3]),
        ]);
        let reference = reference_states(&s);
        let mut first: Option<BTreeMap<EntityId, EntityState>> = None;
        for order in orders {
            let rep = run(&s, &order)?;
            match &first {
                None => first = Some(rep.states.clone()),
                Some(f) => prop_assert_eq!(f, &rep.states, "replicas diverge; order {:?}", order),
            }
            prop_assert_eq!(&rep.states, &reference, "not the join of all writes; order {:?}", order);
            check_losses(&s, &rep)?;
        }
    }

    /// Law 3 on its own: two concurrent writes to one field after a common create, applied in
    /// both orders. They conflict exactly when their values differ; the record is the same in
    /// both orders, its winner is the greater version and is what the state holds.
    #[test]
    fn concurrent_writes_to_one_field_conflict_and_the_greater_wins(
        field in 0..FIELDS.len(),
        create in (1u32..=4, 0u8..4, 0u8..3),
        x in (1u32..=4, 0u8..3),
        y_offset in 1u32..4,
        y_bump in 0u8..3,
    ) {
        let f = FIELDS[field];
        // Distinct devices: two writes from one device would be sequential, not concurrent.
        let y_dev = (x.0 - 1 + y_offset) % 4 + 1;
        let mut b = Builder::default();
        let mut create_fields: Vec<(&'static str, Option<(Version, usize)>)> =
            REQUIRED.iter().map(|f| (*f, None)).collect();
        for (bit, g) in ["status", "assignee"].into_iter().enumerate() {
            if create.1 & (1 << bit) != 0 {
                create_fields.push((g, None));
            }
        }
        b.push(create.0, 0, OpKind::Create, &create_fields, create.2);
        // Both authors saw the created entity: their base is the create's write, or nothing if
        // the create left the field unset.
        let seen = b.written.get(&(0, f)).map(|w| w[0]);
        b.push(x.0, 0, OpKind::Set, &[(f, seen)], x.1);
        b.push(y_dev, 0, OpKind::Set, &[(f, seen)], y_bump);
        let [c, wx, wy] = [&b.ops[0], &b.ops[1], &b.ops[2]];

        let start = apply_op(None, &c.op, c.dev, &c.author).state;
        let mut results = Vec::new();
        for (p, q) in [(wx, wy), (wy, wx)] {
            let one = apply_op(Some(&start), &p.op, p.dev, &p.author);
            let two = apply_op(Some(&one.state), &q.op, q.dev, &q.author);
            let mut all: Vec<ConflictRecord> = one.conflicts.clone();
            all.extend(two.conflicts.clone());
            results.push((two.state, all));
        }
        prop_assert_eq!(&results[0].0, &results[1].0, "states diverge");

        let fx = wx.op.writes(wx.dev, &wx.author).next().unwrap().1;
        let fy = wy.op.writes(wy.dev, &wy.author).next().unwrap().1;
        let (win, lose) = if fx.ver > fy.ver { (fx, fy) } else { (fy, fx) };
        prop_assert!(win.ver > lose.ver);
        prop_assert_eq!(results[0].0.fields.get(f), Some(&win));
        for (_, all) in &results {
            if win.v == lose.v {
                prop_assert!(all.is_empty(), "equal values conflicted: {:?}", all);
            } else {
                prop_assert_eq!(all.len(), 1, "concurrent different writes: {:?}", all);
                let r = &all[0];
                prop_assert!(r.winner.ver > r.loser.ver);
                prop_assert_eq!(&r.winner, &win);
                prop_assert_eq!(&r.loser, &lose);
                prop_assert_eq!(&r.field, f);
            }
        }
    }

    /// Re-applying an op right away changes nothing: no field changes, the state is equal and
    /// any conflict it raises again is one it already raised (same record, same id). Applied
    /// again much later, it still changes no field.
    #[test]
    fn apply_op_is_idempotent(
        s in arb_scenario(),
        pick in any::<prop::sample::Index>(),
        prefix in any::<prop::sample::Index>(),
    ) {
        let n = s.ops.len();
        let k = pick.index(n);
        let cut = prefix.index(n + 1);
        let mut rep = Replica::default();
        for d in &s.ops[..cut] {
            deliver(&mut rep, d)?;
        }
        let d = &s.ops[k];
        let before = rep.states.get(&d.op.id).cloned();
        let once = apply_op(before.as_ref(), &d.op, d.dev, &d.author);
        let twice = apply_op(Some(&once.state), &d.op, d.dev, &d.author);
        prop_assert!(twice.changed.is_empty(), "second apply changed {:?}", twice.changed);
        prop_assert_eq!(&twice.state, &once.state);
        for c in &twice.conflicts {
            prop_assert!(once.conflicts.contains(c), "second apply raised a new conflict {:?}", c);
        }

        // Late re-delivery: after everything, the op still changes no field.
        let mut rep = Replica::default();
        for d in &s.ops {
            deliver(&mut rep, d)?;
        }
        let late = apply_op(rep.states.get(&d.op.id), &d.op, d.dev, &d.author);
        prop_assert!(late.changed.is_empty(), "late re-delivery changed {:?}", late.changed);
        prop_assert_eq!(Some(&late.state), rep.states.get(&d.op.id));
    }
}

// ----- conflict-record laws that do NOT hold (documented, ignored) -------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Would say: replicas applying the same ops in different causal orders keep the same set
    /// of conflict records. It does not hold: which op raises a conflict (hence its id), and
    /// its winner, depend on arrival order (x then y raises cf-y, y then x raises cf-x). Only
    /// the state and the genuinely lost writes converge (tested above); conflict records are
    /// made once, by the server, in its own arrival order.
    #[test]
    #[ignore = "does not hold by design: conflict records depend on arrival order (see report)"]
    fn conflict_records_converge_across_causal_orders(
        s in arb_scenario(),
        seed in any::<u64>(),
    ) {
        let n = s.ops.len();
        let a = run(&s, &(0..n).collect::<Vec<_>>())?;
        let b = run(&s, &causal_order(&s, seed))?;
        prop_assert_eq!(a.kept, b.kept);
    }

    /// Would say: a re-delivered op never raises a conflict id its first delivery did not.
    /// It does not hold: if op a was applied and then overwritten by an op b whose author saw
    /// a, re-applying a finds b current, b != a's base, and raises cf-a (winner b, loser a), a
    /// spurious conflict the id dedup cannot catch. The server never re-applies (it skips
    /// seq <= acked_seq), so this is only a hazard for callers that would.
    #[test]
    #[ignore = "bug (latent, proto level): a late re-delivery can raise a spurious conflict; the server's acked_seq guard avoids it"]
    fn late_redelivery_raises_no_new_conflict(s in arb_scenario(), pick in any::<prop::sample::Index>()) {
        let rep = run(&s, &(0..s.ops.len()).collect::<Vec<_>>())?;
        let d = &s.ops[pick.index(s.ops.len())];
        let late = apply_op(rep.states.get(&d.op.id), &d.op, d.dev, &d.author);
        for c in &late.conflicts {
            let id = conflict_id(d.dev, d.op.seq, &c.field);
            prop_assert!(rep.kept.contains_key(&id), "new conflict {} on re-delivery: {:?}", id, c);
        }
    }
}
