//! Embedded schema migrations, applied by number. Each applied number is recorded, so a
//! migration numbered below one already applied (written on another branch meanwhile)
//! still runs when it arrives. Stores from before this table existed used
//! `PRAGMA user_version` as a count: N there means migrations 1..=N.

use std::collections::BTreeSet;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{AgentError, Result};

pub fn run(conn: &mut Connection, migrations: &[(u32, &str)]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let tracked: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'",
        [],
        |r| r.get(0),
    )?;
    if !tracked {
        let legacy: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        tx.execute_batch(
            "CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
        )?;
        for v in 1..=legacy {
            tx.execute(
                "INSERT INTO migrations (version, applied_ms) VALUES (?1, 0)",
                [v],
            )?;
        }
    }
    let applied: BTreeSet<u32> = tx
        .prepare("SELECT version FROM migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tx.commit()?;
    let known: BTreeSet<u32> = migrations.iter().map(|(v, _)| *v).collect();
    if let Some(v) = applied.iter().find(|v| !known.contains(v)) {
        return Err(AgentError::Corrupt(format!(
            "the store has schema migration {v}, which this agent does not know; upgrade fieldsync"
        )));
    }
    let mut todo: Vec<&(u32, &str)> = migrations
        .iter()
        .filter(|(v, _)| !applied.contains(v))
        .collect();
    todo.sort_by_key(|(v, _)| *v);
    for (v, sql) in todo {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have applied it since we looked.
        let done: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM migrations WHERE version = ?1",
            [v],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            tx.execute(
                "INSERT INTO migrations (version, applied_ms) VALUES (?1, ?2)",
                rusqlite::params![v, now],
            )?;
            let max: u32 = tx.query_row("SELECT MAX(version) FROM migrations", [], |r| r.get(0))?;
            tx.pragma_update(None, "user_version", max)?;
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_lower_number_arriving_later_still_runs() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(
            &mut conn,
            &[(1, "CREATE TABLE a (x);"), (3, "CREATE TABLE c (x);")],
        )
        .unwrap();
        run(
            &mut conn,
            &[
                (1, "CREATE TABLE a (x);"),
                (2, "CREATE TABLE b (x);"),
                (3, "CREATE TABLE c (x);"),
            ],
        )
        .unwrap();
        assert_eq!(tables(&conn), ["a", "b", "c", "migrations"]);
        let err = run(&mut conn, &[(1, "CREATE TABLE a (x);")]).unwrap_err();
        assert!(err.to_string().contains("upgrade"), "{err}");
    }

    #[test]
    fn a_counted_store_keeps_what_it_had() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE a (x); PRAGMA user_version = 1;")
            .unwrap();
        run(
            &mut conn,
            &[(1, "CREATE TABLE a (x);"), (2, "CREATE TABLE b (x);")],
        )
        .unwrap();
        assert_eq!(tables(&conn), ["a", "b", "migrations"]);
    }
}
