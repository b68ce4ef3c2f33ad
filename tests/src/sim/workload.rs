//! What people do: the dispatcher creates, edits, assigns and reassigns orders from a
//! device of their own (offline too) and from the web console; engineers report progress,
//! edit descriptions, add notes and part usages, void notes. Few orders, so the same
//! fields are written concurrently often.

use std::collections::BTreeMap;

use fieldsync_agent::actions::{self, Progress};
use fieldsync_proto::{EntityId, EntityKind, OpKind, Role};
use fieldsync_server::store::{Actor, ServerWrite};
use serde_json::{json, Value};

use super::World;

pub(super) const DISPATCHER: &str = "dana";
pub(super) const ENGINEERS: [&str; 3] = ["eve", "sam", "ann"];
const CUSTOMERS: [&str; 2] = ["cust-1", "cust-2"];
/// Orders the dispatcher sets up before the devices first sync.
const SEED_ORDERS: usize = 2;
/// Distinct values a text edit draws from: few, so equal concurrent values happen too.
const TEXT_VARIANTS: u64 = 4;

fn console_actor() -> Actor {
    Actor {
        user: DISPATCHER.to_owned(),
        role: Role::Dispatcher,
        device: None,
    }
}

fn engineer(world: &mut World) -> String {
    let n = world.params.engineers;
    ENGINEERS[world.rng.index(n)].to_owned()
}

fn new_id(world: &mut World, now_ms: u64) -> EntityId {
    EntityId::generate(now_ms, world.rng.bytes10())
}

fn text(world: &mut World, who: &str, what: &str) -> String {
    format!("{what} by {who} #{}", world.rng.below(TEXT_VARIANTS))
}

fn fields(pairs: Vec<(&str, Value)>) -> BTreeMap<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Customers and the first orders, written through the console before anyone syncs.
pub(super) fn seed_server(world: &mut World) {
    let actor = console_actor();
    let mut writes = Vec::new();
    for c in CUSTOMERS {
        writes.push(ServerWrite {
            kind: EntityKind::Customer,
            id: c.into(),
            create: true,
            fields: fields(vec![("name", json!(format!("Customer {c}")))]),
            base: BTreeMap::new(),
        });
    }
    for i in 0..SEED_ORDERS {
        let now = world.now;
        let id = new_id(world, now);
        let assignee = ENGINEERS[i % world.params.engineers];
        writes.push(ServerWrite {
            kind: EntityKind::WorkOrder,
            id,
            create: true,
            fields: fields(vec![
                ("description", json!(format!("seed order {i}"))),
                ("priority", json!(2)),
                ("assignee", json!(assignee)),
                ("customer_id", json!(CUSTOMERS[i % CUSTOMERS.len()])),
            ]),
            base: BTreeMap::new(),
        });
    }
    for w in writes {
        let now = world.now;
        match world.server.console_write(&actor, w, now) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => world.violation(format!("seeding refused: {e}")),
            Err(e) => world.violation(format!("seeding failed: {e}")),
        }
    }
}

/// A dispatcher at the web console, when the server is up.
pub(super) fn console_write(world: &mut World) {
    if !world.server.is_up() {
        return;
    }
    let actor = console_actor();
    let orders = match world.server.store_list_orders(&actor) {
        Ok(o) => o,
        Err(e) => return world.violation(format!("console list: {e}")),
    };
    let now = world.now;
    let pick = world.rng.below(10);
    let write = match (world.rng.pick(&orders).cloned(), pick) {
        (None, _) | (_, 0..=1) => {
            let id = new_id(world, now);
            let assignee = engineer(world);
            let customer = CUSTOMERS[world.rng.index(CUSTOMERS.len())];
            let description = text(world, DISPATCHER, "new order");
            ServerWrite {
                kind: EntityKind::WorkOrder,
                id,
                create: true,
                fields: fields(vec![
                    ("description", json!(description)),
                    ("priority", json!(world.rng.range(1, 4))),
                    ("assignee", json!(assignee)),
                    ("customer_id", json!(customer)),
                ]),
                base: BTreeMap::new(),
            }
        }
        (Some(o), 2..=5) => ServerWrite {
            kind: EntityKind::WorkOrder,
            id: o.id.as_str().into(),
            create: false,
            fields: fields(vec![("assignee", json!(engineer(world)))]),
            base: BTreeMap::new(),
        },
        (Some(o), 6..=8) => ServerWrite {
            kind: EntityKind::WorkOrder,
            id: o.id.as_str().into(),
            create: false,
            fields: fields(vec![(
                "description",
                json!(text(world, DISPATCHER, "console edit")),
            )]),
            base: BTreeMap::new(),
        },
        (Some(o), _) => ServerWrite {
            kind: EntityKind::WorkOrder,
            id: o.id.as_str().into(),
            create: false,
            fields: fields(vec![("priority", json!(world.rng.range(1, 4)))]),
            base: BTreeMap::new(),
        },
    };
    let what = format!(
        "console: {} {} {} {:?}",
        if write.create { "create" } else { "set" },
        write.kind,
        write.id,
        write.fields
    );
    match world.server.console_write(&actor, write, now) {
        Ok(Ok(())) => world.trace(what),
        Ok(Err(e)) => world.trace(format!("{what} refused: {e}")),
        Err(e) => world.violation(format!("{what} failed: {e}")),
    }
}

/// One thing the person holding device `d` does, if the app is running.
pub(super) fn user_action(world: &mut World, d: usize) {
    if world.devices[d].store.is_none() {
        return;
    }
    let orders = match world.devices[d].store_mut().orders() {
        Ok(o) => o,
        Err(e) => return world.violation(format!("dev{d}: orders: {e}")),
    };
    let order: Option<EntityId> = world.rng.pick(&orders).map(|o| o.id.as_str().into());
    let now = world.devices[d].clock_now();
    let result = if world.devices[d].role == Role::Engineer {
        engineer_action(world, d, order)
    } else {
        dispatcher_action(world, d, order, now)
    };
    match result {
        Some((what, Ok(op))) => {
            world.trace(format!(
                "dev{d}: {what}: recorded op {} on {} {} at {}",
                op.seq, op.kind, op.id, op.hlc
            ));
            if op.kind == EntityKind::Note && op.op == OpKind::Create {
                world.devices[d].notes.push(op.id.clone());
            }
            world.devices[d].recorded.insert(op.seq, op);
        }
        Some((what, Err(e))) => world.trace(format!("dev{d}: {what}: refused locally: {e}")),
        None => {}
    }
}

type Outcome = Option<(String, fieldsync_agent::Result<fieldsync_proto::Op>)>;

fn engineer_action(world: &mut World, d: usize, order: Option<EntityId>) -> Outcome {
    let order = order?;
    let user = world.devices[d].user.clone();
    let now = world.devices[d].clock_now();
    let choice = world.rng.weighted(&[35, 15, 20, 15, 5, 10]);
    let note_id = new_id(world, now);
    let description = text(world, &user, "engineer edit");
    let progress = [
        Progress::EnRoute,
        Progress::OnSite,
        Progress::OnHold,
        Progress::Completed,
    ][world.rng.index(4)];
    let resolution = text(world, &user, "fixed");
    let qty = world.rng.range(1, 5);
    let fault = format!("F-{}", world.rng.below(TEXT_VARIANTS));
    let void = world.rng.pick(&world.devices[d].notes).cloned();
    let store = world.devices[d].store_mut();
    Some(match choice {
        0 => (
            format!("progress {}", progress.as_str()),
            actions::progress(
                store,
                &order,
                progress,
                (progress == Progress::Completed).then_some(resolution.as_str()),
            ),
        ),
        1 => (
            "edit description".to_owned(),
            actions::edit_description(store, &order, &description),
        ),
        2 => (
            "add note".to_owned(),
            store.record(EntityKind::Note, &note_id, OpKind::Create, |_, _| {
                Ok(fields(vec![
                    ("order_id", json!(order)),
                    ("text", json!(description)),
                ]))
            }),
        ),
        3 => (
            "use part".to_owned(),
            store.record(EntityKind::PartUsage, &note_id, OpKind::Create, |_, _| {
                Ok(fields(vec![
                    ("order_id", json!(order)),
                    ("sku", json!(format!("SKU-{qty}"))),
                    ("qty", json!(qty)),
                ]))
            }),
        ),
        4 => {
            let note = void?;
            (
                "void note".to_owned(),
                store.record(EntityKind::Note, &note, OpKind::Set, |_, _| {
                    Ok(fields(vec![("voided", json!(true))]))
                }),
            )
        }
        _ => (
            "set fault code".to_owned(),
            store.record(EntityKind::WorkOrder, &order, OpKind::Set, |_, _| {
                Ok(fields(vec![("fault_code", json!(fault))]))
            }),
        ),
    })
}

fn dispatcher_action(world: &mut World, d: usize, order: Option<EntityId>, now: u64) -> Outcome {
    let choice = world.rng.weighted(&[20, 30, 15, 10, 3, 10]);
    let id = new_id(world, now);
    let assignee = engineer(world);
    let unassign = world.rng.chance(100);
    let customer = CUSTOMERS[world.rng.index(CUSTOMERS.len())];
    let description = text(world, DISPATCHER, "dispatcher edit");
    let priority = world.rng.range(1, 4);
    let store = world.devices[d].store_mut();
    let order = match (choice, order) {
        (0, _) | (_, None) => {
            return Some((
                "create order".to_owned(),
                store.record(EntityKind::WorkOrder, &id, OpKind::Create, |_, _| {
                    Ok(fields(vec![
                        ("description", json!(description)),
                        ("priority", json!(priority)),
                        ("assignee", json!(assignee)),
                        ("customer_id", json!(customer)),
                    ]))
                }),
            ))
        }
        (_, Some(o)) => o,
    };
    let (what, f) = match choice {
        1 if unassign => ("unassign", fields(vec![("assignee", Value::Null)])),
        1 => ("reassign", fields(vec![("assignee", json!(assignee))])),
        2 => (
            "edit description",
            fields(vec![("description", json!(description))]),
        ),
        3 => ("set priority", fields(vec![("priority", json!(priority))])),
        4 => ("cancel", fields(vec![("cancelled", json!(true))])),
        _ => {
            return Some((
                "add note".to_owned(),
                store.record(EntityKind::Note, &id, OpKind::Create, |_, _| {
                    Ok(fields(vec![
                        ("order_id", json!(order)),
                        ("text", json!(description)),
                    ]))
                }),
            ))
        }
    };
    Some((
        what.to_owned(),
        store.record(EntityKind::WorkOrder, &order, OpKind::Set, |_, _| Ok(f)),
    ))
}
