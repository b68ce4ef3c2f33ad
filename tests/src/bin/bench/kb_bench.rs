//! `fieldsync-bench kb`: offline knowledge-base search on an engineer's agent store holding
//! 5,000 articles in English and Chinese. Articles arrive as a pull would bring them
//! (`Store::apply_page`, which indexes them); each query runs through `Store::kb_search`,
//! the path `fieldsync kb search` takes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fieldsync_agent::Store;
use fieldsync_proto::apply::apply_op;
use fieldsync_proto::wire::PullPage;
use fieldsync_proto::{EntityId, EntityKind, EntityState, Hlc, Op, OpKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::report::{round, Checks, Obj};

/// The bound on one search over 5,000 articles.
const SEARCH_MS_TARGET: f64 = 20.0;
/// Articles per simulated pull page.
const PAGE_ARTICLES: usize = 1_000;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Articles on the device.
    #[arg(long, default_value_t = 5_000)]
    pub articles: usize,
    /// Timed runs per query (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
}

const EN: &[&str] = &[
    "pump",
    "relay",
    "condenser",
    "compressor",
    "flow switch",
    "pressure",
    "sensor",
    "valve",
    "fan motor",
    "contactor",
    "refrigerant",
    "leak",
    "alarm",
    "reset",
    "fuse",
    "bearing",
    "belt",
    "filter",
    "thermostat",
    "controller",
    "firmware",
    "wiring",
];
const ZH: &[&str] = &[
    "水泵",
    "继电器",
    "冷凝器",
    "压缩机",
    "流量开关",
    "压力",
    "传感器",
    "阀门",
    "风机",
    "接触器",
    "制冷剂",
    "泄漏",
    "报警",
    "复位",
    "保险丝",
    "轴承",
    "皮带",
    "过滤器",
    "温控器",
    "控制器",
    "固件",
    "接线",
    "过热",
    "结垢",
];

fn article(i: usize, rng: &mut StdRng) -> EntityState {
    let chinese = i % 2 == 1;
    let words = if chinese { ZH } else { EN };
    let pick = |rng: &mut StdRng| words[rng.gen_range(0..words.len())];
    let code = format!("E{}", rng.gen_range(10..99));
    let title = if chinese {
        format!("{}{}故障处理 {code}", pick(rng), pick(rng))
    } else {
        format!("{code}: {} {} fault", pick(rng), pick(rng))
    };
    let sentences = rng.gen_range(15..40);
    let body: String = (0..sentences)
        .map(|_| {
            if chinese {
                format!(
                    "检查{}和{}，必要时更换{}。",
                    pick(rng),
                    pick(rng),
                    pick(rng)
                )
            } else {
                format!(
                    "Check the {} and the {}; replace the {} if needed. ",
                    pick(rng),
                    pick(rng),
                    pick(rng)
                )
            }
        })
        .collect();
    let fields = BTreeMap::from([
        ("title".to_owned(), Value::from(title)),
        ("body".to_owned(), Value::from(body)),
        ("fault_codes".to_owned(), Value::from(code)),
        (
            "models".to_owned(),
            Value::from(format!("Model {}", i % 50)),
        ),
    ]);
    let op = Op {
        seq: i as u64 + 1,
        kind: EntityKind::KbArticle,
        id: EntityId(format!("kb-{i}")),
        hlc: Hlc::from_millis(1_700_000_000_000 + i as u64),
        op: OpKind::Create,
        fields,
        base: BTreeMap::new(),
    };
    apply_op(None, &op, 0, "dana").state
}

pub fn run(args: &Args) -> anyhow::Result<(Obj, bool)> {
    let dir = tempfile::tempdir()?;
    let mut store = Store::open(dir.path())?;
    let mut rng = StdRng::seed_from_u64(42);
    let loaded = Instant::now();
    let mut cursor = 0;
    let all: Vec<EntityState> = (0..args.articles).map(|i| article(i, &mut rng)).collect();
    for chunk in all.chunks(PAGE_ARTICLES) {
        cursor += chunk.len() as u64;
        store.apply_page(&PullPage {
            entities: chunk.to_vec(),
            left: vec![],
            cursor,
            more: false,
            hlc: Hlc::from_millis(1_700_000_100_000),
            server_time_ms: 1_700_000_100_000,
        })?;
    }
    let load_s = loaded.elapsed().as_secs_f64();
    let queries = [
        ("english_two_words", "pump relay"),
        ("english_word_part", "condens"),
        ("fault_code_and_word", "E42 pump"),
        ("chinese_two_chars", "水泵"),
        ("chinese_phrase", "压缩机"),
        ("chinese_two_words", "冷凝器 结垢"),
        ("no_match", "hydraulic"),
    ];
    let mut checks = Checks::default();
    let mut per_query = Obj::new();
    let mut worst = 0.0f64;
    for (name, q) in queries {
        let mut times: Vec<Duration> = Vec::with_capacity(args.runs);
        let mut found = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            found = store.kb_search(q, 10)?.len();
            times.push(t.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64() * 1e3;
        let max = times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3);
        worst = worst.max(median);
        checks.check(
            &format!("{name}_found"),
            (name == "no_match") == (found == 0),
            format!("{found} hits"),
        );
        let mut o = Obj::new();
        o.put("query", q)
            .figure("median_ms", round(median, 2), SEARCH_MS_TARGET)
            .put("max_ms", round(max, 2))
            .put("hits", found as u64);
        per_query.obj(name, o);
    }
    let mut report = Obj::new();
    report
        .put("bench", "kb")
        .put("articles", args.articles as u64)
        .put("load_and_index_s", round(load_s, 2))
        .figure("search_worst_median_ms", round(worst, 2), SEARCH_MS_TARGET)
        .obj("queries", per_query)
        .obj("checks", checks.to_obj());
    Ok((report, checks.all_ok()))
}
