use super::*;
use crate::hlc::Hlc;
use crate::state::FieldState;
use crate::validate::validate_op;
use serde_json::json;
use std::collections::BTreeMap;

fn state(kind: EntityKind, id: &str, at: u64, fields: Value) -> EntityState {
    let mut s = EntityState::new(kind, id.into());
    for (k, v) in fields.as_object().unwrap() {
        s.fields.insert(
            k.clone(),
            FieldState {
                v: v.clone(),
                ver: Version {
                    hlc: Hlc::from_millis(at),
                    dev: 1,
                },
                by: "u".into(),
            },
        );
    }
    s
}

fn mv(id: &str, at: u64, fields: Value) -> EntityState {
    state(EntityKind::StockMovement, id, at, fields)
}

fn catalog() -> Vec<EntityState> {
    vec![
        state(
            EntityKind::StockLocation,
            "wh",
            1,
            json!({"name": "Main", "type": "warehouse"}),
        ),
        state(
            EntityKind::StockLocation,
            "van-a",
            1,
            json!({"name": "Van A", "type": "van", "engineers": "ann"}),
        ),
        state(
            EntityKind::StockLocation,
            "van-b",
            1,
            json!({"name": "Van B", "type": "van", "engineers": "bob"}),
        ),
        state(
            EntityKind::Part,
            "p1",
            1,
            json!({"sku": "PUMP-1", "name": "Pump"}),
        ),
        state(
            EntityKind::Part,
            "p2",
            1,
            json!({"sku": "CTL-9", "name": "Controller", "serial_tracked": true}),
        ),
    ]
}

#[test]
fn every_movement_type_moves_the_right_stock() {
    let ms = [
        mv(
            "m1",
            10,
            json!({"type": "receipt", "part_id": "p1", "qty": 5, "to_location": "wh"}),
        ),
        mv(
            "m2",
            20,
            json!({"type": "transfer", "part_id": "p1", "qty": 2, "from_location": "wh", "to_location": "van-a"}),
        ),
        mv(
            "m3",
            30,
            json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a", "order_id": "w1"}),
        ),
        // Dead on arrival: out of the van's usable stock, faulty at the warehouse.
        mv(
            "m4",
            40,
            json!({"type": "rma", "part_id": "p1", "qty": 1, "from_location": "van-a", "to_location": "wh"}),
        ),
        // The unit taken out of the customer's machine: faulty at the warehouse only.
        mv(
            "m5",
            50,
            json!({"type": "rma", "part_id": "p1", "qty": 1, "to_location": "wh", "order_id": "w1"}),
        ),
    ];
    let b = derive(&ms);
    let at = |l: &str| b[&(l.to_owned(), "p1".to_owned())].clone();
    assert_eq!((at("wh").on_hand, at("wh").faulty), (3, 2));
    assert_eq!((at("van-a").on_hand, at("van-a").faulty), (0, 0));
    assert!(!at("van-a").overdrawn());
}

#[test]
fn two_consumptions_of_the_last_unit_overdraw_and_both_count() {
    let mut ms = vec![
        mv(
            "r",
            10,
            json!({"type": "transfer", "part_id": "p1", "qty": 1, "from_location": "wh", "to_location": "van-a"}),
        ),
        mv(
            "c-ann",
            20,
            json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a", "order_id": "w1"}),
        ),
        mv(
            "c-ann2",
            21,
            json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a", "order_id": "w2"}),
        ),
    ];
    let b = derive(&ms);
    let van = &b[&("van-a".to_owned(), "p1".to_owned())];
    assert_eq!(van.on_hand, -1);
    assert!(van.overdrawn());
    assert_eq!(van.overdrawn_by, vec!["c-ann2".to_owned()]);
    // The warehouse gave one it never received: overdrawn too, and said so.
    assert_eq!(
        b[&("wh".to_owned(), "p1".to_owned())].overdrawn_by,
        vec!["r".to_owned()]
    );
    // A receipt that covers the gap clears the flag; a voided consumption counts for nothing.
    ms.push(mv(
        "top-up",
        30,
        json!({"type": "receipt", "part_id": "p1", "qty": 2, "to_location": "van-a"}),
    ));
    let mut voided = ms[1].clone();
    voided.fields.insert(
        "voided".into(),
        FieldState {
            v: json!(true),
            ver: Version {
                hlc: Hlc::from_millis(40),
                dev: 1,
            },
            by: "u".into(),
        },
    );
    ms.push(voided);
    let van = &derive(&ms)[&("van-a".to_owned(), "p1".to_owned())];
    assert_eq!((van.on_hand, van.overdrawn_by.len()), (2, 0));
}

#[test]
fn report_joins_names_minimums_and_flags() {
    let mut states = catalog();
    states.push(mv("c", 20, json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a", "order_id": "w1"})));
    states.push(state(
        EntityKind::StockMin,
        &min_id("van-a", "p2").0,
        5,
        json!({"location_id": "van-a", "part_id": "p2", "min_qty": 2}),
    ));
    let all = report(&states, None);
    let van = report(&states, Some("van-a"));
    assert_eq!(all, van, "only van A has lines");
    assert_eq!(van.len(), 2);
    assert_eq!(
        (
            van[0].sku.as_str(),
            van[0].on_hand,
            van[0].overdrawn,
            van[0].low
        ),
        ("CTL-9", 0, false, true)
    );
    assert_eq!(
        (
            van[1].sku.as_str(),
            van[1].on_hand,
            van[1].overdrawn,
            van[1].low
        ),
        ("PUMP-1", -1, true, false)
    );
    assert_eq!(van[1].location, "Van A");
    assert!(report(&states, Some("wh")).is_empty());
}

#[test]
fn derived_ids_are_stable_and_valid() {
    assert_eq!(min_id("a", "b"), min_id("a", "b"));
    assert_ne!(min_id("a", "bc"), min_id("ab", "c"));
    assert!(EntityId::is_valid(min_id(&"x".repeat(64), "p").as_str()));
    assert!(EntityId::is_valid(transfer_id(&"y".repeat(64)).as_str()));
}

fn op(kind: EntityKind, fields: Value) -> Op {
    Op {
        seq: 1,
        kind,
        id: "x1".into(),
        hlc: Hlc(1),
        op: OpKind::Create,
        fields: serde_json::from_value::<BTreeMap<String, Value>>(fields).unwrap(),
        base: BTreeMap::new(),
    }
}

fn code(r: Result<(), OpError>) -> String {
    r.unwrap_err().code
}

#[test]
fn shapes_by_type_and_role() {
    let m = |f: Value| op(EntityKind::StockMovement, f);
    let consume = m(
        json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a", "order_id": "w1"}),
    );
    assert!(validate_op(&consume, Role::Engineer).is_ok());
    for (bad, why) in [
        (
            json!({"type": "consumption", "part_id": "p1", "qty": 0, "from_location": "van-a", "order_id": "w1"}),
            "zero",
        ),
        (
            json!({"type": "consumption", "part_id": "p1", "qty": -2, "from_location": "van-a", "order_id": "w1"}),
            "negative",
        ),
        (
            json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a"}),
            "no order",
        ),
        (
            json!({"type": "consumption", "part_id": "p1", "qty": 1, "order_id": "w1"}),
            "no van",
        ),
        (json!({"type": "rma", "part_id": "p1", "qty": 1}), "nowhere"),
        (
            json!({"type": "teleport", "part_id": "p1", "qty": 1, "to_location": "wh"}),
            "unknown type",
        ),
    ] {
        assert_eq!(
            code(validate_op(&m(bad), Role::Engineer)),
            "invalid_value",
            "{why}"
        );
    }
    let receipt = m(json!({"type": "receipt", "part_id": "p1", "qty": 3, "to_location": "wh"}));
    assert_eq!(code(validate_op(&receipt, Role::Engineer)), "not_owner");
    assert!(validate_op(&receipt, Role::Dispatcher).is_ok());
    let same = m(
        json!({"type": "transfer", "part_id": "p1", "qty": 3, "from_location": "wh", "to_location": "wh"}),
    );
    assert_eq!(code(validate_op(&same, Role::Dispatcher)), "invalid_value");
    let req = op(
        EntityKind::Requisition,
        json!({"part_id": "p1", "qty": 2, "van_id": "van-a"}),
    );
    assert!(validate_op(&req, Role::Engineer).is_ok());
    let min = op(
        EntityKind::StockMin,
        json!({"location_id": "van-a", "part_id": "p1", "min_qty": 1}),
    );
    assert_eq!(code(validate_op(&min, Role::Engineer)), "not_creator");
}

#[test]
fn an_engineer_records_only_in_their_own_van_and_never_blocked_by_stock() {
    let states = catalog();
    let locations: Vec<LocationInfo> = states.iter().filter_map(LocationInfo::of).collect();
    let part = |id: &str| states.iter().find(|s| s.id.as_str() == id);
    let ctx = |user: &'static str, p: &'static str| {
        StockContext {
            user,
            role: Role::Engineer,
            locations: &locations,
            part: None,
            order_ok: true,
            current: None,
        }
        .with_part(part(p))
    };
    let consume = op(
        EntityKind::StockMovement,
        json!({"type": "consumption", "part_id": "p1", "qty": 50, "from_location": "van-a", "order_id": "w1"}),
    );
    assert!(
        check_located(&consume, &ctx("ann", "p1")).is_ok(),
        "no stock, still recorded"
    );
    assert_eq!(
        code(check_located(&consume, &ctx("bob", "p1"))),
        "out_of_scope"
    );
    assert_eq!(
        code(check_located(&consume, &ctx("ann", "nope"))),
        "not_found"
    );
    let unknown_van = op(
        EntityKind::StockMovement,
        json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-x", "order_id": "w1"}),
    );
    assert_eq!(
        code(check_located(&unknown_van, &ctx("ann", "p1"))),
        "not_found"
    );
    let serial = op(
        EntityKind::StockMovement,
        json!({"type": "consumption", "part_id": "p2", "qty": 1, "from_location": "van-a", "order_id": "w1"}),
    );
    assert_eq!(
        code(check_located(&serial, &ctx("ann", "p2"))),
        "invalid_value"
    );
    let mut with_serial = serial.clone();
    with_serial.fields.insert("serial".into(), json!("SN-1"));
    assert!(check_located(&with_serial, &ctx("ann", "p2")).is_ok());
    let req = op(
        EntityKind::Requisition,
        json!({"part_id": "p1", "qty": 2, "van_id": "van-a", "from_location": "wh"}),
    );
    assert!(check_located(&req, &ctx("ann", "p1")).is_ok());
    assert_eq!(code(check_located(&req, &ctx("bob", "p1"))), "out_of_scope");
    let from_van = op(
        EntityKind::Requisition,
        json!({"part_id": "p1", "qty": 2, "van_id": "van-a", "from_location": "van-b"}),
    );
    assert_eq!(
        code(check_located(&from_van, &ctx("ann", "p1"))),
        "invalid_value"
    );
}

#[test]
fn a_decided_requisition_stays_decided() {
    let states = catalog();
    let locations: Vec<LocationInfo> = states.iter().filter_map(LocationInfo::of).collect();
    let decided = state(
        EntityKind::Requisition,
        "x1",
        5,
        json!({"part_id": "p1", "qty": 1, "van_id": "van-a", "status": "rejected"}),
    );
    let mut set = op(
        EntityKind::Requisition,
        json!({"status": "approved", "transfer_id": "t"}),
    );
    set.op = OpKind::Set;
    let ctx = StockContext {
        user: "dana",
        role: Role::Dispatcher,
        locations: &locations,
        part: None,
        order_ok: true,
        current: Some(&decided),
    };
    assert_eq!(code(check_located(&set, &ctx)), "already_decided");
    let pending = state(
        EntityKind::Requisition,
        "x1",
        5,
        json!({"part_id": "p1", "qty": 1, "van_id": "van-a"}),
    );
    set.fields.remove("transfer_id");
    let ctx = StockContext {
        current: Some(&pending),
        ..ctx
    };
    assert_eq!(
        code(check_located(&set, &ctx)),
        "invalid_value",
        "approval without its transfer"
    );
}

#[test]
fn an_engineer_voids_only_their_own_vans_consumption() {
    let states = catalog();
    let locations: Vec<LocationInfo> = states.iter().filter_map(LocationInfo::of).collect();
    let consumed = mv(
        "c",
        5,
        json!({"type": "consumption", "part_id": "p1", "qty": 1, "from_location": "van-a", "order_id": "w1"}),
    );
    let transfer = mv(
        "t",
        5,
        json!({"type": "transfer", "part_id": "p1", "qty": 1, "from_location": "wh", "to_location": "van-a"}),
    );
    let mut void = op(EntityKind::StockMovement, json!({"voided": true}));
    void.op = OpKind::Set;
    assert!(validate_op(&void, Role::Engineer).is_ok());
    for (user, current, ok) in [
        ("ann", &consumed, true),
        ("bob", &consumed, false),
        // The office's transfer into her van is not hers to undo.
        ("ann", &transfer, false),
    ] {
        let ctx = StockContext {
            user,
            role: Role::Engineer,
            locations: &locations,
            part: None,
            order_ok: true,
            current: Some(current),
        };
        let got = check_located(&void, &ctx);
        assert_eq!(got.is_ok(), ok, "{user} {}: {got:?}", current.id);
        if !ok {
            assert_eq!(code(got), "out_of_scope");
        }
    }
}

#[test]
fn a_movement_reads_the_same_from_its_stored_line() {
    let mut voided = mv(
        "c",
        20,
        json!({"type": "consumption", "part_id": "p1", "qty": 2, "from_location": "van-a", "order_id": "w1", "serial": "S\"1", "note": "fitted"}),
    );
    voided.fields.insert(
        "voided".into(),
        FieldState {
            v: json!(true),
            ver: Version {
                hlc: Hlc::from_millis(30),
                dev: 4,
            },
            by: "v".into(),
        },
    );
    let receipt = mv(
        "r-\u{e9}",
        10,
        json!({"type": "receipt", "part_id": "p1", "qty": 5, "to_location": "wh"}),
    );
    let mut cleared = receipt.clone();
    cleared.fields.insert(
        "order_id".into(),
        FieldState {
            v: Value::Null,
            ver: Version::default(),
            by: "u".into(),
        },
    );
    for s in [voided, receipt, cleared] {
        let line = serde_json::to_string(&s).unwrap();
        assert_eq!(Movement::from_state_json(&line), Movement::of(&s), "{line}");
        assert!(Movement::of(&s).is_some());
    }
    let part = serde_json::to_string(&catalog()[3]).unwrap();
    assert_eq!(Movement::from_state_json(&part), None);
}
