//! `liteshop serve`: a whole shop over HTTP with one command.
//!
//! With no configuration it serves `liteshop.db` in the working directory
//! on `127.0.0.1:8080`, with an in-process fake payment gateway that
//! approves everything (logged loudly) and a random admin token printed once.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use liteshop::{Clock, FakeGateway, HttpGateway, Shop, SystemClock, Timestamp};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(name = "liteshop", about = "The liteshop server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the shop over HTTP until SIGTERM or Ctrl-C.
    Serve(Serve),
}

#[derive(clap::Args, Debug)]
struct Serve {
    /// The shop's database file.
    #[arg(long, env = "LITESHOP_DB", default_value = "liteshop.db")]
    db: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "LITESHOP_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// The payment gateway's base URL; without it a fake gateway approves
    /// everything.
    #[arg(long, env = "LITESHOP_PG_URL", requires = "pg_secret")]
    pg_url: Option<String>,
    /// The payment gateway's secret key.
    #[arg(long, env = "LITESHOP_PG_SECRET", hide_env_values = true)]
    pg_secret: Option<String>,
    /// The admin token; a random one is printed once if unset.
    #[arg(long, env = "LITESHOP_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The secret user tokens are signed with; a random one (tokens die with
    /// the process) if unset.
    #[arg(long, env = "LITESHOP_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Seconds between reconciliation rounds of payments and refunds.
    #[arg(long, env = "LITESHOP_RECONCILE_EVERY", default_value_t = 30)]
    reconcile_every: u64,
    /// Seconds between sweeps that expire unpaid orders.
    #[arg(long, env = "LITESHOP_EXPIRE_EVERY", default_value_t = 10)]
    expire_every: u64,
    /// Hours an Idempotency-Key is remembered; a repeat after that runs as
    /// a new request.
    #[arg(long, env = "LITESHOP_KEEP_KEYS_HOURS", default_value_t = 24)]
    keep_keys_hours: u64,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random generator");
    hex::encode(buf)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,liteshop=info".into()),
        )
        .init();
    let Command::Serve(args) = Cli::parse().command;

    let builder = Shop::builder(&args.db);
    let builder = match (&args.pg_url, &args.pg_secret) {
        (Some(url), Some(secret)) => builder.gateway(HttpGateway::builder(url, secret).build()),
        _ => {
            warn!(
                "NO PAYMENT GATEWAY CONFIGURED: a FAKE gateway approves every payment; set LITESHOP_PG_URL and LITESHOP_PG_SECRET for real money"
            );
            builder.gateway(FakeGateway::new())
        }
    };
    let shop = builder.build()?;

    let admin_token = match args.admin_token {
        Some(token) => token,
        None => {
            let token = random_hex(24);
            // Printed once, on standard output, never logged.
            println!("admin token (shown once): {token}");
            token
        }
    };
    let token_secret = match args.token_secret {
        Some(secret) => secret.into_bytes(),
        None => {
            warn!(
                "LITESHOP_TOKEN_SECRET is not set: user tokens are signed with a random secret and stop working when the process ends"
            );
            random_hex(32).into_bytes()
        }
    };
    let config = liteshop_server::Config::new(token_secret, admin_token);

    // Background work: reconciliation on its own thread, expiry on the
    // blocking pool; both stop when the server does.
    let reconciler = shop.spawn_reconciler(Duration::from_secs(args.reconcile_every.max(1)));
    let expiry = {
        let shop = shop.clone();
        let every = Duration::from_secs(args.expire_every.max(1));
        let keep_keys_ms =
            i64::try_from(args.keep_keys_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let shop = shop.clone();
                let sweep = move || {
                    let expired = shop.expire_orders()?;
                    let cutoff = SystemClock.now().as_millis().saturating_sub(keep_keys_ms);
                    let pruned = shop.prune_idempotency_keys(Timestamp::from_millis(cutoff))?;
                    Ok::<_, liteshop::Error>((expired, pruned))
                };
                match tokio::task::spawn_blocking(sweep).await {
                    Ok(Ok((expired, pruned))) if expired + pruned > 0 => {
                        info!(
                            expired,
                            pruned, "unpaid orders expired, old idempotency keys pruned"
                        );
                    }
                    Ok(Err(err)) => warn!(error = %err, "the sweep failed"),
                    _ => {}
                }
            }
        })
    };

    let app = liteshop_server::router(shop, config);
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    info!(addr = %listener.local_addr()?, db = %args.db.display(), "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    expiry.abort();
    reconciler.stop();
    info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutting down: finishing requests in flight");
}
