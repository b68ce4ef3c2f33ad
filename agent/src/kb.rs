//! The knowledge base offline: articles pulled like any broadcast entity, indexed in a
//! trigram FTS5 table as they are saved, searched by substring in any language.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use fieldsync_proto::view::ArticleRef;
use fieldsync_proto::{EntityKind, EntityState};

use crate::error::{AgentError, Result};

/// Articles a search returns at most.
pub const SEARCH_RESULTS_MAX: usize = 20;
/// Articles suggested for one order.
const SUGGESTIONS_MAX: usize = 5;
/// Articles mentioning an order's model or fault code checked for a suggestion.
const SUGGEST_CANDIDATES_MAX: usize = 200;
/// Terms one query may hold.
const SEARCH_TERMS_MAX: usize = 8;
/// Characters of context either side of the first match in a snippet.
const SNIPPET_CONTEXT_CHARS: usize = 40;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KbHit {
    pub id: String,
    pub title: String,
    pub tags: Option<String>,
    pub models: Option<String>,
    pub fault_codes: Option<String>,
    /// The body around the first term found in it.
    pub snippet: String,
}

fn text_of(state: &EntityState) -> String {
    ["title", "tags", "models", "fault_codes", "body"]
        .iter()
        .filter_map(|f| state.str(f))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keep the index in step with a saved article (called in the saving transaction).
pub(crate) fn index(conn: &Connection, state: &EntityState) -> Result<()> {
    debug_assert_eq!(state.kind, EntityKind::KbArticle);
    conn.prepare_cached("INSERT INTO kb_docs (id) VALUES (?1) ON CONFLICT (id) DO NOTHING")?
        .execute([state.id.as_str()])?;
    let rowid: i64 = conn
        .prepare_cached("SELECT rowid FROM kb_docs WHERE id = ?1")?
        .query_row([state.id.as_str()], |r| r.get(0))?;
    conn.prepare_cached("DELETE FROM kb_fts WHERE rowid = ?1")?
        .execute([rowid])?;
    if !state.bool("retired") {
        conn.prepare_cached("INSERT INTO kb_fts (rowid, text) VALUES (?1, ?2)")?
            .execute(params![rowid, text_of(state)])?;
    }
    Ok(())
}

/// The words of a query: `%` and `_` are LIKE's wildcards, so they separate words here.
fn terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| c.is_whitespace() || c == '%' || c == '_')
        .filter(|t| !t.is_empty())
        .take(SEARCH_TERMS_MAX)
        .map(str::to_owned)
        .collect()
}

/// Ids of the articles holding every one of `words`, best first, at most `limit`.
fn matching(conn: &Connection, words: &[String], limit: usize) -> Result<Vec<String>> {
    let (long, short): (Vec<&String>, Vec<&String>) =
        words.iter().partition(|w| w.chars().count() >= 3);
    let mut sql =
        String::from("SELECT d.id FROM kb_fts JOIN kb_docs d ON d.rowid = kb_fts.rowid WHERE 1");
    let mut args: Vec<String> = Vec::new();
    if !long.is_empty() {
        sql.push_str(" AND kb_fts MATCH ?");
        args.push(
            long.iter()
                .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(" AND "),
        );
    }
    for w in &short {
        sql.push_str(" AND kb_fts.text LIKE ?");
        args.push(format!("%{w}%"));
    }
    sql.push_str(if long.is_empty() {
        " ORDER BY d.rowid LIMIT ?"
    } else {
        " ORDER BY rank LIMIT ?"
    });
    args.push(limit.to_string());
    let ids = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            r.get::<_, String>(0)
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Articles containing every word of `query` (case-insensitive for Latin letters), best
/// first. Words of three characters or more go to the trigram index as phrases, ranked by
/// bm25; shorter ones (two Chinese characters make a word) are checked with LIKE on what
/// the longer ones matched, or on every article when the query has no longer word.
pub fn search(conn: &Connection, query: &str, limit: usize) -> Result<Vec<KbHit>> {
    let words = terms(query);
    if words.is_empty() {
        return Err(AgentError::Invalid(
            "type one or more words to search for".into(),
        ));
    }
    let ids = matching(conn, &words, limit.min(SEARCH_RESULTS_MAX))?;
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let mut hits = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(state) = article(conn, &id)? else {
            continue;
        };
        let field = |f: &str| state.str(f).map(str::to_owned);
        let body = field("body").unwrap_or_default();
        hits.push(KbHit {
            snippet: snippet(&body, &body.to_lowercase(), &lower),
            id,
            title: field("title").unwrap_or_default(),
            tags: field("tags"),
            models: field("models"),
            fault_codes: field("fault_codes"),
        });
    }
    Ok(hits)
}

/// Articles suggested for an order: those listing its asset's model or its fault code
/// (comma-separated `models` / `fault_codes`, case-insensitive), both first.
pub fn suggest(
    conn: &Connection,
    model: Option<&str>,
    fault_code: Option<&str>,
) -> Result<Vec<ArticleRef>> {
    let norm = |s: &str| s.trim().to_lowercase();
    let model = model.map(norm).filter(|m| !m.is_empty());
    let code = fault_code.map(norm).filter(|c| !c.is_empty());
    let wanted: Vec<&String> = model.iter().chain(code.iter()).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // The index narrows to articles mentioning either anywhere; their fields decide. The
    // bound is wider than a search's, so body mentions cannot crowd out a listed article.
    let mut out: Vec<(u8, ArticleRef)> = Vec::new();
    for word in &wanted {
        for id in matching(conn, &terms(word), SUGGEST_CANDIDATES_MAX)? {
            if out.iter().any(|(_, a)| a.id == id) {
                continue;
            }
            let Some(state) = article(conn, &id)? else {
                continue;
            };
            let lists = |f: &str| -> Vec<String> {
                state.str(f).unwrap_or("").split(',').map(norm).collect()
            };
            let by_model = model.as_ref().is_some_and(|m| lists("models").contains(m));
            let by_code = code
                .as_ref()
                .is_some_and(|c| lists("fault_codes").contains(c));
            if by_model || by_code {
                out.push((
                    u8::from(by_model) + 2 * u8::from(by_code),
                    ArticleRef {
                        id,
                        title: state.str("title").unwrap_or_default().to_owned(),
                    },
                ));
            }
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.title.cmp(&b.1.title)));
    Ok(out
        .into_iter()
        .take(SUGGESTIONS_MAX)
        .map(|(_, a)| a)
        .collect())
}

/// Up to [`SNIPPET_CONTEXT_CHARS`] either side of the first word found in the body.
fn snippet(body: &str, body_lower: &str, words: &[String]) -> String {
    let chars: Vec<char> = body.chars().collect();
    let lower: Vec<char> = body_lower.chars().collect();
    // Lowercasing can change the length of a few characters; then start at the top.
    let at = if chars.len() == lower.len() {
        words
            .iter()
            .filter_map(|w| {
                let w: Vec<char> = w.chars().collect();
                lower.windows(w.len()).position(|win| win == w.as_slice())
            })
            .min()
            .unwrap_or(0)
    } else {
        0
    };
    let from = at.saturating_sub(SNIPPET_CONTEXT_CHARS);
    let to = (at + 2 * SNIPPET_CONTEXT_CHARS).min(chars.len());
    let mut s: String = chars[from..to].iter().collect();
    s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if from > 0 {
        s.insert(0, '…');
    }
    if to < chars.len() {
        s.push('…');
    }
    s
}

/// One article as held offline.
pub fn article(conn: &Connection, id: &str) -> Result<Option<EntityState>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT state FROM entities WHERE kind = 'kb_article' AND id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| AgentError::Corrupt(format!("kb article: {e}")))
    })
    .transpose()
}
