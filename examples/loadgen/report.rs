//! The report of a run: throughput, the ratio to the raw baseline, and
//! the latency table.

use super::*;

pub(super) fn throughput(stats: &Stats, elapsed: Duration) -> f64 {
    stats.count as f64 / elapsed.as_secs_f64()
}

/// liteshop's throughput for `op` as a multiple of the raw baseline's.
pub(super) fn ratio(
    op: Op,
    stats: &Stats,
    elapsed: Duration,
    baseline: Option<&(BTreeMap<Op, Stats>, Duration)>,
) -> Option<f64> {
    let (raw, raw_elapsed) = baseline?;
    raw.get(&op)
        .map(|r| throughput(stats, elapsed) / throughput(r, *raw_elapsed))
}

pub(super) fn report(
    args: &Args,
    stats: &BTreeMap<Op, Stats>,
    elapsed: Duration,
    baseline: Option<&(BTreeMap<Op, Stats>, Duration)>,
    place: &Place,
    checks: &[Check],
    rounds: u32,
) -> Value {
    let mut peek = Peek::open(place);
    let mut by_status =
        |sql: &str| -> HashMap<String, i64> { peek.pairs(sql).into_iter().collect() };
    let mut ops = serde_json::Map::new();
    for (op, s) in stats {
        let mut entry = json!({
            "count": s.count,
            "ok": s.ok,
            "refused": s.refused,
            "throughput": throughput(s, elapsed),
            "p50_us": s.latency_us.value_at_quantile(0.5),
            "p99_us": s.latency_us.value_at_quantile(0.99),
            "p999_us": s.latency_us.value_at_quantile(0.999),
            "max_us": s.latency_us.max(),
        });
        if let Some((raw, raw_elapsed)) = baseline
            && let Some(r) = raw.get(op)
        {
            entry["raw_throughput"] = json!(throughput(r, *raw_elapsed));
        }
        if let Some(ratio) = ratio(*op, s, elapsed, baseline) {
            entry["ratio"] = json!(ratio);
        }
        ops.insert(op.name().into(), entry);
    }
    json!({
        "config": {
            "threads": args.threads,
            "seconds": elapsed.as_secs_f64(),
            "users": args.users,
            "products": args.products,
            "stock": args.stock,
            "mix": args.mix,
            "hot": args.hot,
            "durability": format!("{:?}", args.durability).to_lowercase(),
            "writer": format!("{:?}", args.writer).to_lowercase(),
            "gateway": if args.pg_url.is_some() { "http" } else { "fake" },
            "backend": place.backend(),
        },
        "ops": ops,
        "payments": by_status("SELECT status, count(*) FROM payments GROUP BY status"),
        "orders": by_status("SELECT status, count(*) FROM orders GROUP BY status"),
        "reconcile_rounds": rounds,
        "invariants": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
        "invariants_held": checks.iter().all(|c| c.ok),
    })
}

pub(super) fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1_000.0)
}

pub(super) fn print_table(
    args: &Args,
    stats: &BTreeMap<Op, Stats>,
    elapsed: Duration,
    baseline: Option<&(BTreeMap<Op, Stats>, Duration)>,
    report: &Value,
    checks: &[Check],
) {
    println!(
        "liteshop: {} threads, {:.1} s, durability {:?}, writer {:?}",
        args.threads,
        elapsed.as_secs_f64(),
        args.durability,
        args.writer
    );
    println!(
        "{:<7} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}  {:<7} refused",
        "op", "count", "ok", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "vs raw"
    );
    for (op, s) in stats {
        let ratio = ratio(*op, s, elapsed, baseline).map_or("-".to_owned(), |r| format!("{r:.2}x"));
        let refused: Vec<String> = s.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{:<7} {:>8} {:>8} {:>10.0} {:>9} {:>9} {:>9} {:>9}  {:<7} {}",
            op.name(),
            s.count,
            s.ok,
            throughput(s, elapsed),
            ms(s.latency_us.value_at_quantile(0.5)),
            ms(s.latency_us.value_at_quantile(0.99)),
            ms(s.latency_us.value_at_quantile(0.999)),
            ms(s.latency_us.max()),
            ratio,
            refused.join(", ")
        );
    }
    if let Some((raw, raw_elapsed)) = baseline {
        println!(
            "raw {} baseline, same mix, {:.1} s:",
            if args
                .db
                .as_ref()
                .is_some_and(|db| db.to_string_lossy().starts_with("postgres"))
            {
                "postgres"
            } else {
                "rusqlite"
            },
            raw_elapsed.as_secs_f64()
        );
        for (op, r) in raw {
            println!(
                "  {:<7} {:>10.0} ops/s  p99.9 {} ms",
                op.name(),
                throughput(r, *raw_elapsed),
                ms(r.latency_us.value_at_quantile(0.999))
            );
        }
    }
    println!("payments: {}", report["payments"]);
    println!("orders:   {}", report["orders"]);
    println!("invariants:");
    for c in checks {
        println!(
            "  [{}] {} ({})",
            if c.ok { "ok" } else { "FAILED" },
            c.name,
            c.detail
        );
    }
    if checks.iter().all(|c| c.ok) {
        println!("all invariants held");
    } else {
        println!("SOME INVARIANTS FAILED");
    }
}

pub(super) fn file_size(path: &Path) -> String {
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// This process's resident memory now and at its peak (Linux).
pub(super) fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or("?".to_owned(), |kb| format!("{} MB", kb / 1024))
    };
    format!("{} (peak {})", field("VmRSS:"), field("VmHWM:"))
}
