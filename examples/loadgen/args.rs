//! The command line: its arguments and the mix of operations it names.

use super::*;

#[derive(Parser, Debug, Clone)]
#[command(about = "Load liteshop with a mix of calls and check its invariants")]
pub(super) struct Args {
    /// Worker threads.
    #[arg(long, default_value_t = 8)]
    pub(super) threads: usize,
    /// How long to run (ignored with --ops).
    #[arg(long, default_value_t = 10)]
    pub(super) seconds: u64,
    /// Run this many operations in all instead of for a time.
    #[arg(long)]
    pub(super) ops: Option<u64>,
    /// Users.
    #[arg(long, default_value_t = 100)]
    pub(super) users: i64,
    /// Products.
    #[arg(long, default_value_t = 50)]
    pub(super) products: i64,
    /// Initial stock of each product.
    #[arg(long, default_value_t = 100_000)]
    pub(super) stock: u32,
    /// Weights of the operations: `charge` is a top-up through the PG
    /// (start, widget, confirm), `pay` a payment by tender (balance, card
    /// or both; some abandoned or tampered in the widget).
    #[arg(
        long,
        default_value = "charge=20,cart=20,order=20,pay=15,cancel=5,refund=3,coupon=2,read=15"
    )]
    pub(super) mix: String,
    /// Share of orders whose first line is the one hot product (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub(super) hot: f64,
    /// Database file to create (default: a temp file); must not exist. A
    /// `postgres://` URL runs on PostgreSQL instead (built with
    /// `--features postgres`), in a new schema.
    #[arg(long)]
    pub(super) db: Option<PathBuf>,
    /// With a PostgreSQL `--db`: the schema to create and keep (must not
    /// exist; the raw baseline uses `<name>_raw`). Without it, a throwaway
    /// `loadgen_<pid>` is dropped at the end.
    #[arg(long)]
    pub(super) pg_schema: Option<String>,
    /// Commit durability.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    pub(super) durability: DurabilityArg,
    /// How writers reach the database.
    #[arg(long, value_enum, default_value_t = WriterArg::Batched)]
    pub(super) writer: WriterArg,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub(super) json: bool,
    /// Share of approvals the fake PG declines.
    #[arg(long, default_value_t = 0.05)]
    pub(super) pg_decline: f64,
    /// Share of approvals whose reply the fake PG loses (half before, half
    /// after it approved).
    #[arg(long, default_value_t = 0.02)]
    pub(super) pg_unknown: f64,
    /// Use HttpGateway against a PG at this URL instead of the fake.
    #[arg(long, requires = "pg_secret")]
    pub(super) pg_url: Option<String>,
    /// The PG's secret key (with --pg-url).
    #[arg(long)]
    pub(super) pg_secret: Option<String>,
    /// The HTTP PG's response timeout in milliseconds.
    #[arg(long)]
    pub(super) pg_timeout_ms: Option<u64>,
    /// Also run the same mix directly on rusqlite and print the ratios.
    #[arg(long, value_enum)]
    pub(super) baseline: Option<BaselineArg>,
    /// Preload a large history first — this many more users, each with 10
    /// ledger entries and 3 cancelled orders with their events — run the
    /// mix over all users, and compare with the same mix on a fresh small
    /// file run first (1,000,000 gives a file over 2 GB).
    #[arg(long)]
    pub(super) preload: Option<i64>,
    /// Run on an existing shop file (--db) instead of seeding a new one,
    /// over all its users (a file left by an earlier --preload run).
    #[arg(long, requires = "db", conflicts_with = "preload")]
    pub(super) reuse: bool,
    /// Page cache per connection, in KiB (the builder's default if unset).
    #[arg(long)]
    pub(super) cache_kib: Option<u32>,
    /// Memory map per connection, in MiB (the builder's default if unset).
    #[arg(long)]
    pub(super) mmap_mib: Option<u64>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(super) enum DurabilityArg {
    Full,
    Normal,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(super) enum WriterArg {
    Dedicated,
    Pooled,
    Batched,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(super) enum BaselineArg {
    Raw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Op {
    Charge,
    Cart,
    Order,
    Pay,
    Cancel,
    Refund,
    Coupon,
    Read,
}

pub(super) const OPS: [Op; 8] = [
    Op::Charge,
    Op::Cart,
    Op::Order,
    Op::Pay,
    Op::Cancel,
    Op::Refund,
    Op::Coupon,
    Op::Read,
];

impl Op {
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Charge => "charge",
            Op::Cart => "cart",
            Op::Order => "order",
            Op::Pay => "pay",
            Op::Cancel => "cancel",
            Op::Refund => "refund",
            Op::Coupon => "coupon",
            Op::Read => "read",
        }
    }
}

pub(super) fn parse_mix(text: &str) -> Result<Vec<(Op, u32)>, String> {
    let mut mix = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected op=weight"))?;
        let op = OPS
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| format!("unknown op {name:?}"))?;
        let weight: u32 = weight
            .parse()
            .map_err(|_| format!("bad weight in {part:?}"))?;
        mix.push((op, weight));
    }
    if mix.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        return Err("the mix has no weight".into());
    }
    Ok(mix)
}
