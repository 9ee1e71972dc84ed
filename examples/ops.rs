//! Operations on a shop file.
//!
//! ```sh
//! cargo run --example ops -- audit --db shop.db          # exit 0 when the books balance
//! cargo run --example ops -- audit --db shop.db --json
//! cargo run --example ops -- backup --db shop.db --to copy.db   # while it serves
//! ```
//!
//! `audit` checks every conservation law (ARCHITECTURE.md, "Guarantees")
//! in one read snapshot and prints the report; it exits 1 when a law is
//! broken and 2 when the file cannot be opened.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use liteshop::Shop;

#[derive(Parser, Debug)]
#[command(about = "Operations on a liteshop file")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that the books balance.
    Audit {
        /// The shop's database file.
        #[arg(long)]
        db: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the shop to a new file while it serves, with a progress bar.
    Backup {
        /// The shop's database file.
        #[arg(long)]
        db: PathBuf,
        /// The new file (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::Backup { db, to } => {
            if !db.exists() {
                eprintln!("{}: no such file", db.display());
                return ExitCode::from(2);
            }
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("backup [{bar:40}] {pos}/{len} pages")
                    .expect("template")
                    .progress_chars("=> "),
            );
            let done = Shop::open(&db).and_then(|shop| {
                shop.backup(&to, |p| {
                    bar.set_length(p.total);
                    bar.set_position(p.copied);
                })
            });
            bar.finish();
            match done {
                Ok(()) => {
                    println!("{} -> {}", db.display(), to.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("backup: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Audit { db, json } => {
            if !db.exists() {
                eprintln!("{}: no such file", db.display());
                return ExitCode::from(2);
            }
            let report = match Shop::open(&db).and_then(|shop| shop.audit()) {
                Ok(report) => report,
                Err(err) => {
                    eprintln!("{}: {err}", db.display());
                    return ExitCode::from(2);
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serialises")
                );
            } else {
                println!("{report}");
            }
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
