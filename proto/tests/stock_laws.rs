//! Laws of derived stock over random movements: the balance does not depend on the order
//! or repetition of delivery (replicas that hold the same movements show the same stock),
//! stock is conserved (only receipts bring units in; only consumption and returns take
//! them out), and an overdraw is always flagged, never lost.

use fieldsync_proto::state::{FieldState, Version};
use fieldsync_proto::stock::{derive, Balance, StockKey};
use fieldsync_proto::{EntityKind, EntityState, Hlc};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const LOCATIONS: [&str; 3] = ["wh", "van-a", "van-b"];
const PARTS: [&str; 2] = ["p1", "p2"];

#[derive(Clone, Debug)]
struct Gen {
    ty: u8,
    from: usize,
    to: usize,
    part: usize,
    qty: i64,
    at: u64,
    dev: u32,
    voided: bool,
}

fn movement(i: usize, g: &Gen) -> EntityState {
    let (from, to) = (LOCATIONS[g.from], LOCATIONS[g.to]);
    let mut f: BTreeMap<&str, Value> =
        BTreeMap::from([("part_id", json!(PARTS[g.part])), ("qty", json!(g.qty))]);
    match g.ty % 5 {
        0 => {
            f.insert("type", json!("receipt"));
            f.insert("to_location", json!(to));
        }
        1 if from != to => {
            f.insert("type", json!("transfer"));
            f.insert("from_location", json!(from));
            f.insert("to_location", json!(to));
        }
        2 | 1 => {
            f.insert("type", json!("consumption"));
            f.insert("from_location", json!(from));
            f.insert("order_id", json!("w1"));
        }
        3 => {
            f.insert("type", json!("rma"));
            f.insert("from_location", json!(from));
            f.insert("to_location", json!("wh"));
        }
        _ => {
            f.insert("type", json!("rma"));
            f.insert("to_location", json!("wh"));
        }
    }
    if g.voided {
        f.insert("voided", json!(true));
    }
    let mut s = EntityState::new(EntityKind::StockMovement, format!("m{i}").as_str().into());
    for (k, v) in f {
        s.fields.insert(
            k.to_owned(),
            FieldState {
                v,
                ver: Version {
                    hlc: Hlc::from_millis(g.at),
                    dev: g.dev,
                },
                by: "u".into(),
            },
        );
    }
    s
}

fn gens() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(
        (
            0u8..5,
            0usize..3,
            0usize..3,
            0usize..2,
            1i64..5,
            0u64..50,
            1u32..4,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(ty, from, to, part, qty, at, dev, voided)| Gen {
                ty,
                from,
                to,
                part,
                qty,
                at: 1_700_000_000_000 + at,
                dev,
                voided,
            }),
        0..40,
    )
}

fn total(b: &BTreeMap<StockKey, Balance>, part: &str) -> i64 {
    b.iter()
        .filter(|((_, p), _)| p == part)
        .map(|(_, b)| b.on_hand)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn stock_is_independent_of_delivery_order_and_repeats(gs in gens(), seed in any::<u64>()) {
        let states: Vec<EntityState> = gs.iter().enumerate().map(|(i, g)| movement(i, g)).collect();
        let once = derive(&states);
        // Another order, with some states delivered twice.
        let mut shuffled: Vec<&EntityState> = states.iter().chain(states.iter().step_by(3)).collect();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(derive(shuffled), once);
    }

    #[test]
    fn stock_is_conserved_and_every_overdraw_is_flagged(gs in gens()) {
        let states: Vec<EntityState> = gs.iter().enumerate().map(|(i, g)| movement(i, g)).collect();
        let b = derive(&states);
        for part in PARTS {
            let mut expect = 0;
            for s in states.iter().filter(|s| s.str("part_id") == Some(part) && !s.bool("voided")) {
                let qty = s.i64("qty").unwrap();
                match s.str("type").unwrap() {
                    "receipt" => expect += qty,
                    "consumption" => expect -= qty,
                    "rma" if s.str("from_location").is_some() => expect -= qty,
                    _ => {}
                }
            }
            prop_assert_eq!(total(&b, part), expect);
        }
        for bal in b.values() {
            prop_assert_eq!(bal.overdrawn(), bal.on_hand < 0);
            prop_assert_eq!(bal.on_hand < 0, !bal.overdrawn_by.is_empty(), "{:?}", bal);
            prop_assert!(bal.faulty >= 0);
        }
    }
}
