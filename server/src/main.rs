//! `liteshop`: the shop's one command. `serve` runs a whole shop over HTTP;
//! `audit`, `backup`, `reconcile`, `expire-orders`, `prune-keys`, `events`
//! and `copy` are the operator's tools (see `cli.rs` for their exit codes).
//!
//! With no configuration `serve` serves `liteshop.db` in the working
//! directory on `127.0.0.1:8080`, with an in-process fake payment gateway
//! (logged loudly) whose fake widget step is `POST /fake-pg/widget` (and,
//! for the storefront at `/shop`, the page `GET /fake-pg/widget`), and a
//! random admin token printed once.

mod cli;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use liteshop::{Clock, FakeGateway, HttpGateway, Shop, SystemClock, Timestamp};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "liteshop",
    about = "The liteshop server and the operator's tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the shop over HTTP until SIGTERM or Ctrl-C.
    Serve(Serve),
    /// Check every law of the books; exit 1 if one is broken.
    Audit(cli::Audit),
    /// Copy the shop to a new file while it serves, with a progress bar.
    Backup(cli::Backup),
    /// Run one round of reconciliation; exit 1 if a payment or refund needs
    /// a person.
    Reconcile(cli::Reconcile),
    /// Cancel the unpaid orders past their reservation.
    ExpireOrders(cli::ExpireOrders),
    /// Forget idempotency keys older than an age.
    PruneKeys(cli::PruneKeys),
    /// Print the event feed after a consumer's cursor (JSON lines) and ack.
    Events(cli::Events),
    /// Copy a shop into an empty one (a SQLite file into PostgreSQL), then
    /// audit both and compare.
    Copy(cli::Copy),
}

#[derive(clap::Args, Debug)]
struct Serve {
    /// The shop: a database file, or a PostgreSQL connection string
    /// (`postgres://…`, several hosts with `target_session_attrs` included).
    #[arg(long, env = "LITESHOP_DB", default_value = "liteshop.db")]
    db: PathBuf,
    /// The PostgreSQL schema of the shop's tables.
    #[arg(long, env = "LITESHOP_PG_SCHEMA", default_value = liteshop::ShopBuilder::DEFAULT_PG_SCHEMA)]
    pg_schema: String,
    /// Address to listen on.
    #[arg(long, env = "LITESHOP_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// The payment gateway's base URL; without it a FAKE gateway approves
    /// every payment paid in its FAKE widget step (`POST /fake-pg/widget`).
    #[arg(long, env = "LITESHOP_PG_URL", requires = "pg_secret")]
    pg_url: Option<String>,
    /// The payment gateway's secret key.
    #[arg(long, env = "LITESHOP_PG_SECRET", hide_env_values = true)]
    pg_secret: Option<String>,
    /// The widget page the storefront (`/shop`) sends customers to, to pay
    /// the PG part; on the FAKE gateway its own `/fake-pg/widget`. With a
    /// real PG and no widget page the storefront is not served.
    #[arg(long, env = "LITESHOP_WIDGET_URL")]
    widget_url: Option<String>,
    /// This server's address as customers' browsers reach it (for the PG's
    /// redirects back to the storefront); the request's `Host` if unset.
    #[arg(long, env = "LITESHOP_PUBLIC_URL")]
    public_url: Option<String>,
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
    /// The shop's UTC offset in minutes east of UTC (e.g. 540 for Seoul):
    /// the calendar days of best sellers and the times the console shows.
    /// Without it, the offset stored in the file (UTC for a new file).
    #[arg(
        long,
        env = "LITESHOP_UTC_OFFSET_MINUTES",
        allow_negative_numbers = true
    )]
    utc_offset_minutes: Option<i32>,
    /// Seconds a client has to send a request's headers (from its first
    /// byte, or from connecting) before its connection is closed.
    #[arg(long, env = "LITESHOP_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a client has to send a request's whole body once its headers
    /// arrived; a slower one is answered 408 and its connection closed.
    #[arg(long, env = "LITESHOP_BODY_TIMEOUT", default_value_t = 30)]
    body_timeout: u64,
    /// Seconds the server waits, after SIGTERM or Ctrl-C, for requests in
    /// flight to finish before it closes every connection left and exits.
    #[arg(long, env = "LITESHOP_SHUTDOWN_GRACE", default_value_t = 10)]
    shutdown_grace: u64,
}

/// The lease the sweep (order expiry and key pruning) is led by.
const SWEEP_JOB: &str = "liteshop serve: sweep";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random generator");
    hex::encode(buf)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,liteshop=info".into()),
        )
        .init();
    let args = match Cli::parse().command {
        Command::Serve(args) => args,
        Command::Audit(command) => return command.run(),
        Command::Backup(command) => return command.run(),
        Command::Reconcile(command) => return command.run(),
        Command::ExpireOrders(command) => return command.run(),
        Command::PruneKeys(command) => return command.run(),
        Command::Events(command) => return command.run(),
        Command::Copy(command) => return command.run(),
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(Box::<dyn std::error::Error>::from)
        .and_then(|runtime| {
            let result =
                open_shop(&args).and_then(|(shop, fake)| runtime.block_on(serve(args, shop, fake)));
            // Whatever still runs on the blocking pool after the grace
            // period (a write finishing its commit) gets a moment; then the
            // process ends.
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("liteshop serve: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Opens the shop, before the async runtime starts: opening may block (a
/// PostgreSQL connection, migrations), and the synchronous PostgreSQL
/// client must not run on an async worker. Without a PG configured, the
/// shop runs on an in-process fake gateway, returned too so the server can
/// offer its (fake) widget step.
fn open_shop(args: &Serve) -> Result<(Shop, Option<FakeGateway>), Box<dyn std::error::Error>> {
    let builder = Shop::builder(&args.db).pg_schema(&args.pg_schema);
    let builder = match args.utc_offset_minutes {
        Some(minutes) => builder.utc_offset_minutes(minutes),
        None => builder,
    };
    let (builder, fake) = match (&args.pg_url, &args.pg_secret) {
        (Some(url), Some(secret)) => (
            builder.gateway(HttpGateway::builder(url, secret).build()),
            None,
        ),
        _ => {
            warn!(
                "NO PAYMENT GATEWAY CONFIGURED: a FAKE gateway approves every payment paid in its FAKE widget (POST /fake-pg/widget); set LITESHOP_PG_URL and LITESHOP_PG_SECRET for real money"
            );
            let fake = FakeGateway::new();
            (builder.gateway(fake.clone()), Some(fake))
        }
    };
    Ok((builder.build()?, fake))
}

async fn serve(
    args: Serve,
    shop: Shop,
    fake: Option<FakeGateway>,
) -> Result<(), Box<dyn std::error::Error>> {
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
    let mut config = liteshop_server::Config::new(token_secret, admin_token);
    config.body_timeout = Duration::from_secs(args.body_timeout.max(1));
    let widget_url = match (&args.widget_url, &fake) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(_)) => Some("/fake-pg/widget".to_owned()),
        (None, None) => {
            info!("no --widget-url: the storefront (/shop) is not served");
            None
        }
    };
    if let Some(fake) = fake {
        config = config.with_fake_widget(fake);
    }
    if let Some(widget_url) = widget_url {
        config = config.with_storefront(liteshop_server::Storefront {
            widget_url,
            public_url: args.public_url.clone(),
        });
    }

    // Background work: reconciliation on its own thread, expiry and key
    // pruning on the blocking pool; both stop when the server does. Each
    // is led by a lease: of N servers on one database, one runs each job at
    // a time, and another takes over within three rounds if it dies.
    let reconciler = shop.spawn_reconciler(Duration::from_secs(args.reconcile_every.max(1)));
    let sweeper = format!(
        "liteshop serve pid {} {}",
        std::process::id(),
        random_hex(8)
    );
    let expiry = {
        let shop = shop.clone();
        let holder = sweeper.clone();
        let every = Duration::from_secs(args.expire_every.max(1));
        let lease = every.saturating_mul(3);
        let keep_keys_ms =
            i64::try_from(args.keep_keys_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut leading = false;
            loop {
                tick.tick().await;
                let shop = shop.clone();
                let holder = holder.clone();
                let sweep = move || {
                    if !shop.take_lease(SWEEP_JOB, &holder, lease)? {
                        return Ok(None);
                    }
                    let expired = shop.expire_orders()?;
                    let cutoff = SystemClock.now().as_millis().saturating_sub(keep_keys_ms);
                    let pruned = shop.prune_idempotency_keys(Timestamp::from_millis(cutoff))?;
                    Ok::<_, liteshop::Error>(Some((expired, pruned)))
                };
                match tokio::task::spawn_blocking(sweep).await {
                    Ok(Ok(swept)) => {
                        if swept.is_some() != leading {
                            leading = swept.is_some();
                            info!(job = SWEEP_JOB, leading, "the sweep's lease changed hands");
                        }
                        if let Some((expired, pruned)) = swept.filter(|(e, p)| e + p > 0) {
                            info!(
                                expired,
                                pruned, "unpaid orders expired, old idempotency keys pruned"
                            );
                        }
                    }
                    Ok(Err(err)) => warn!(error = %err, "the sweep failed"),
                    Err(_) => {}
                }
            }
        })
    };

    let shop_for_release = shop.clone();
    let app = liteshop_server::router(shop, config);
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let db = if cli::is_postgres(&args.db) {
        format!("PostgreSQL schema {}", args.pg_schema)
    } else {
        args.db.display().to_string()
    };
    info!(addr = %listener.local_addr()?, %db, "serving");
    let timeouts = Timeouts {
        header: Duration::from_secs(args.header_timeout.max(1)),
        grace: Duration::from_secs(args.shutdown_grace),
    };
    run(listener, app, timeouts, shutdown()).await;
    expiry.abort();
    // A clean stop hands the sweep over at once (the reconciler's handle
    // gives its own lease back when it stops).
    let released = {
        let shop = shop_for_release;
        tokio::task::spawn_blocking(move || shop.release_lease(SWEEP_JOB, &sweeper)).await
    };
    if let Ok(Err(err)) = released {
        warn!(error = %err, "could not give the sweep's lease back; it expires on its own");
    }
    reconciler.stop();
    info!("stopped");
    Ok(())
}

/// How long the server waits for a client's headers, and for requests in
/// flight once it is told to stop.
struct Timeouts {
    header: Duration,
    grace: Duration,
}

/// Serves HTTP/1.1 connections until `stop` resolves, then stops accepting,
/// lets the requests in flight finish for at most the grace period, and
/// returns — closing whatever connections are left, so no client (one that
/// stalls half-way through its headers, say) can keep the server running.
/// A client that takes longer than the header timeout to send its headers
/// is disconnected at any time.
async fn run(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    timeouts: Timeouts,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors, say: wait rather than spin.
                        warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let connection = http.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => info!("every connection closed"),
        () = tokio::time::sleep(timeouts.grace) => {
            warn!(grace_secs = timeouts.grace.as_secs(),
                "the shutdown grace period ran out: closing the connections left");
        }
    }
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
    info!("shutting down: finishing requests in flight, then closing connections");
}
