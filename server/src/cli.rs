//! The operator's commands beside `serve`: `audit`, `backup`, `reconcile`,
//! `expire-orders`, `prune-keys` and `events`. Each opens the shop named by
//! `--db` (or `LITESHOP_DB`), does one thing, and exits 0 when all is well,
//! 1 when it found a problem a person must look at, and 2 when it could
//! not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use liteshop::{Clock, FakeGateway, HttpGateway, Shop, SystemClock, Timestamp};

/// Exit code: everything is fine.
const FINE: u8 = 0;
/// Exit code: it ran, and found something a person must look at.
const PROBLEM: u8 = 1;
/// Exit code: it could not run.
const FAILED: u8 = 2;

/// The shop a command works on.
#[derive(Args, Debug)]
pub(crate) struct Db {
    /// The shop: a database file, which must exist, or a PostgreSQL
    /// connection string (`postgres://…`).
    #[arg(long, env = "LITESHOP_DB", default_value = "liteshop.db")]
    db: PathBuf,
    /// The PostgreSQL schema of the shop's tables.
    #[arg(long, env = "LITESHOP_PG_SCHEMA", default_value = liteshop::ShopBuilder::DEFAULT_PG_SCHEMA)]
    pg_schema: String,
}

/// Whether a `--db` names a PostgreSQL database rather than a file, by the
/// library's own rule.
pub(crate) fn is_postgres(db: &Path) -> bool {
    liteshop::is_postgres_target(&db.to_string_lossy())
}

impl Db {
    /// Opens the shop, refusing one that does not exist — a missing file,
    /// or a PostgreSQL schema without liteshop's tables: a command never
    /// creates a shop by accident.
    fn open(&self, gateway: Option<&Gateway>) -> Result<Shop, ExitCode> {
        let builder = Shop::builder(&self.db)
            .pg_schema(&self.pg_schema)
            .existing_only();
        let builder = match gateway {
            Some(gateway) => match gateway.build() {
                Some(builder_gateway) => builder_gateway.install(builder),
                None => {
                    eprintln!(
                        "reconcile asks the payment gateway: set --pg-url and --pg-secret (or --fake-gateway for a shop served with the fake one)"
                    );
                    return Err(ExitCode::from(FAILED));
                }
            },
            None => builder,
        };
        builder.build().map_err(|err| fail(&self.db, &err))
    }
}

/// The payment gateway `reconcile` asks.
#[derive(Args, Debug)]
pub(crate) struct Gateway {
    /// The payment gateway's base URL.
    #[arg(long, env = "LITESHOP_PG_URL", requires = "pg_secret")]
    pg_url: Option<String>,
    /// The payment gateway's secret key.
    #[arg(long, env = "LITESHOP_PG_SECRET", hide_env_values = true)]
    pg_secret: Option<String>,
    /// Ask an in-process fake gateway, for a shop served with the fake one
    /// (`liteshop serve` without `--pg-url`). Never for real money.
    #[arg(long, conflicts_with = "pg_url")]
    fake_gateway: bool,
}

/// A gateway, once chosen.
enum Chosen {
    Http(HttpGateway),
    Fake(FakeGateway),
}

impl Chosen {
    fn install(self, builder: liteshop::ShopBuilder) -> liteshop::ShopBuilder {
        match self {
            Chosen::Http(gateway) => builder.gateway(gateway),
            Chosen::Fake(gateway) => builder.gateway(gateway),
        }
    }
}

impl Gateway {
    fn build(&self) -> Option<Chosen> {
        match (&self.pg_url, &self.pg_secret) {
            (Some(url), Some(secret)) => {
                Some(Chosen::Http(HttpGateway::builder(url, secret).build()))
            }
            _ if self.fake_gateway => Some(Chosen::Fake(FakeGateway::new())),
            _ => None,
        }
    }
}

fn fail(db: &Path, err: &dyn std::fmt::Display) -> ExitCode {
    // A connection string is never printed: it may carry a password.
    let shown = if is_postgres(db) {
        "the PostgreSQL database".to_owned()
    } else {
        db.display().to_string()
    };
    eprintln!("{shown}: {err}");
    ExitCode::from(FAILED)
}

fn exit(result: Result<ExitCode, ExitCode>) -> ExitCode {
    result.unwrap_or_else(|code| code)
}

/// `liteshop audit`: checks every law of the books.
#[derive(Args, Debug)]
pub(crate) struct Audit {
    #[command(flatten)]
    db: Db,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl Audit {
    /// Prints the report; 1 if a law is broken.
    pub(crate) fn run(self) -> ExitCode {
        exit((|| {
            let shop = self.db.open(None)?;
            let report = shop.audit().map_err(|err| fail(&self.db.db, &err))?;
            if self.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serialises")
                );
            } else {
                println!("{report}");
            }
            Ok(ExitCode::from(if report.is_clean() {
                FINE
            } else {
                PROBLEM
            }))
        })())
    }
}

/// `liteshop backup`: a consistent copy while the shop serves.
#[derive(Args, Debug)]
pub(crate) struct Backup {
    #[command(flatten)]
    db: Db,
    /// The new file; it must not exist.
    #[arg(long)]
    to: PathBuf,
}

impl Backup {
    /// Copies with a progress bar on standard error.
    pub(crate) fn run(self) -> ExitCode {
        exit((|| {
            let shop = self.db.open(None)?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("backup [{bar:40}] {pos}/{len} pages")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            let done = shop.backup(&self.to, |p| {
                bar.set_length(p.total);
                bar.set_position(p.copied);
            });
            bar.finish();
            done.map_err(|err| fail(&self.to, &err))?;
            println!("{} -> {}", self.db.db.display(), self.to.display());
            Ok(ExitCode::from(FINE))
        })())
    }
}

/// `liteshop reconcile`: one round of reconciliation.
#[derive(Args, Debug)]
pub(crate) struct Reconcile {
    #[command(flatten)]
    db: Db,
    #[command(flatten)]
    gateway: Gateway,
    /// Print the report as JSON (with `--compare-with-pg`, an object of
    /// `reconciled`, the round's report, and `compared_with_pg`).
    #[arg(long)]
    json: bool,
    /// Also compare every payment approved within this age (`7d`, `24h`)
    /// with the PG's record, recording cancels made at the PG outside the
    /// shop (`Shop::compare_with_pg`): one lookup per payment.
    #[arg(long, value_parser = parse_age, value_name = "AGE")]
    compare_with_pg: Option<Duration>,
}

impl Reconcile {
    /// Settles what it can and lists what needs a person; 1 if anything
    /// does.
    pub(crate) fn run(self) -> ExitCode {
        exit((|| {
            let shop = self.db.open(Some(&self.gateway))?;
            let report = shop
                .reconcile_payments()
                .map_err(|err| fail(&self.db.db, &err))?;
            let compared = match self.compare_with_pg {
                Some(within) => Some(
                    shop.compare_with_pg(within)
                        .map_err(|err| fail(&self.db.db, &err))?,
                ),
                None => None,
            };
            let changed = compared.iter().flatten().any(|p| p.needs_review);
            if self.json {
                let out = match &compared {
                    Some(compared) => serde_json::json!({
                        "reconciled": report,
                        "compared_with_pg": compared,
                    }),
                    None => serde_json::to_value(&report).expect("a report serialises"),
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).expect("a report serialises")
                );
            } else {
                for p in compared.iter().flatten().filter(|p| p.needs_review) {
                    let of = p
                        .order
                        .map_or_else(|| "a top-up".to_owned(), |o| format!("order {o}"));
                    println!(
                        "payment {} ({of}): {}, changed at the PG outside the shop  NEEDS A PERSON",
                        p.payment, p.status
                    );
                }
                if let Some(compared) = &compared {
                    println!("{} payments compared with the PG's record", compared.len());
                }
                for p in &report.payments {
                    let review = if p.needs_review {
                        "  NEEDS A PERSON"
                    } else {
                        ""
                    };
                    let of = p
                        .order
                        .map_or_else(|| "a top-up".to_owned(), |o| format!("order {o}"));
                    println!("payment {} ({of}): {}{review}", p.payment, p.status);
                }
                for r in &report.refunds {
                    let review = if r.needs_review {
                        "  NEEDS A PERSON"
                    } else {
                        ""
                    };
                    let of = r
                        .order
                        .map_or_else(|| "a top-up".to_owned(), |o| format!("order {o}"));
                    println!("refund {} ({of}): {}{review}", r.refund, r.status);
                }
                println!(
                    "{} payments and {} refunds looked at; {}",
                    report.payments.len(),
                    report.refunds.len(),
                    if report.needs_review() {
                        "some need a person"
                    } else {
                        "none needs a person"
                    }
                );
            }
            Ok(ExitCode::from(if report.needs_review() || changed {
                PROBLEM
            } else {
                FINE
            }))
        })())
    }
}

/// `liteshop expire-orders`: cancels unpaid orders past their reservation.
#[derive(Args, Debug)]
pub(crate) struct ExpireOrders {
    #[command(flatten)]
    db: Db,
}

impl ExpireOrders {
    /// Expires and says how many.
    pub(crate) fn run(self) -> ExitCode {
        exit((|| {
            let shop = self.db.open(None)?;
            let expired = shop
                .expire_orders()
                .map_err(|err| fail(&self.db.db, &err))?;
            println!("{expired} orders expired");
            Ok(ExitCode::from(FINE))
        })())
    }
}

/// `liteshop prune-keys`: forgets old idempotency keys.
#[derive(Args, Debug)]
pub(crate) struct PruneKeys {
    #[command(flatten)]
    db: Db,
    /// Forget keys older than this: a number with a unit, `s`, `m`, `h` or
    /// `d` (e.g. `24h`, `7d`).
    #[arg(long, value_parser = parse_age)]
    older_than: Duration,
}

impl PruneKeys {
    /// Prunes and says how many.
    pub(crate) fn run(self) -> ExitCode {
        exit((|| {
            let shop = self.db.open(None)?;
            let age = i64::try_from(self.older_than.as_millis()).unwrap_or(i64::MAX);
            let before = Timestamp::from_millis(SystemClock.now().as_millis().saturating_sub(age));
            let pruned = shop
                .prune_idempotency_keys(before)
                .map_err(|err| fail(&self.db.db, &err))?;
            println!("{pruned} idempotency keys forgotten");
            Ok(ExitCode::from(FINE))
        })())
    }
}

/// Reads `24h`, `30m`, `7d`, `90s`.
pub(crate) fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: give a unit, e.g. 24h"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a number of s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too long"))
}

/// `liteshop copy`: a whole shop into an empty one (a SQLite file into
/// PostgreSQL, say), then both audited and compared.
#[derive(Args, Debug)]
pub(crate) struct Copy {
    /// The shop to copy: a file (or a PostgreSQL URL).
    #[arg(long)]
    from: PathBuf,
    /// The empty shop to copy into: a PostgreSQL URL (or a new file).
    #[arg(long)]
    to: PathBuf,
    /// The PostgreSQL schema of the target (and of the source, if it is
    /// one).
    #[arg(long, default_value = liteshop::ShopBuilder::DEFAULT_PG_SCHEMA)]
    pg_schema: String,
}

impl Copy {
    /// Copies, prints the rows per table and the figures; 1 if the audits
    /// disagree, 2 if it could not run (a target with rows among them).
    pub(crate) fn run(self) -> ExitCode {
        let builder = |target: &Path| Shop::builder(target).pg_schema(&self.pg_schema);
        exit((|| {
            // The source must exist; the target may be created.
            let from = builder(&self.from)
                .existing_only()
                .build()
                .map_err(|err| fail(&self.from, &err))?;
            let to = builder(&self.to)
                .build()
                .map_err(|err| fail(&self.to, &err))?;
            match liteshop::copy(&from, &to) {
                Ok(report) => {
                    for (table, rows) in &report.rows {
                        println!("{table}: {rows} rows");
                    }
                    println!(
                        "copied; both audits clean and equal: {} won charged, {} events",
                        report.figures.charged, report.figures.events
                    );
                    Ok(ExitCode::from(FINE))
                }
                Err(liteshop::Error::CopyMismatch { from, to }) => {
                    eprintln!(
                        "the copy does not match its source:
{from}
{to}"
                    );
                    Ok(ExitCode::from(PROBLEM))
                }
                Err(err) => Err(fail(&self.to, &err)),
            }
        })())
    }
}

/// `liteshop events`: the feed as a named consumer.
#[derive(Args, Debug)]
pub(crate) struct Events {
    #[command(flatten)]
    db: Db,
    /// The consumer whose cursor is read and moved.
    #[arg(long)]
    consumer: String,
    /// Keep reading new events as they come, until interrupted.
    #[arg(long)]
    follow: bool,
}

impl Events {
    /// Prints each event after the consumer's cursor as one JSON line, then
    /// acks it: delivery is at least once (a crash between the two prints
    /// an event again next time), never skipping one.
    pub(crate) fn run(self) -> ExitCode {
        exit((|| {
            let shop = self.db.open(None)?;
            let fail = |err: liteshop::Error| fail(&self.db.db, &err);
            loop {
                let cursor = shop.event_cursor(&self.consumer).map_err(fail)?;
                let events = shop.events(cursor, 100).map_err(fail)?;
                for event in &events {
                    println!(
                        "{}",
                        serde_json::to_string(event).expect("an event serialises")
                    );
                }
                if let Some(last) = events.last() {
                    shop.ack_events(&self.consumer, last.seq).map_err(fail)?;
                    continue;
                }
                if !self.follow {
                    return Ok(ExitCode::from(FINE));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_have_a_unit() {
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_age("24").is_err());
        assert!(parse_age("h").is_err());
        assert!(parse_age("3w").is_err());
    }
}
