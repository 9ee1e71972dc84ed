//! Where a run's shop lives — a SQLite file or a PostgreSQL schema — and
//! the plain connections the baselines, checks and report open on it.

use super::*;

/// Where this run's shop goes: a new file (or, with `--reuse`, the one
/// given), or a new PostgreSQL schema.
pub(super) fn place(args: &Args, dir: &Path) -> Result<Place, String> {
    let given = args.db.as_ref().map(|db| db.to_string_lossy().into_owned());
    if let Some(url) =
        given.filter(|db| db.starts_with("postgres://") || db.starts_with("postgresql://"))
    {
        if args.reuse || args.preload.is_some() {
            return Err("--reuse and --preload are for a SQLite file".into());
        }
        #[cfg(not(feature = "postgres"))]
        {
            drop(url);
            return Err("a PostgreSQL --db needs `--features postgres`".into());
        }
        #[cfg(feature = "postgres")]
        {
            let schema = args
                .pg_schema
                .clone()
                .unwrap_or_else(|| format!("loadgen_{}", std::process::id()));
            for name in [schema.clone(), format!("{schema}_raw")] {
                if pg_schema_exists(&url, &name) {
                    return Err(format!("--pg-schema: schema {name} exists; name a new one"));
                }
            }
            return Ok(Place::Postgres { url, schema });
        }
    }
    if args.pg_schema.is_some() {
        return Err("--pg-schema goes with a postgres:// --db".into());
    }
    let path = args.db.clone().unwrap_or_else(|| dir.join("loadgen.db"));
    if path.exists() && !args.reuse {
        // Reuse is asked for, never assumed.
        return Err(format!(
            "--db {}: the file exists; give a new path or --reuse",
            path.display()
        ));
    }
    Ok(Place::File(path))
}

/// Where a shop under load lives: a SQLite file, or a schema of a
/// PostgreSQL database. No `Debug`: the URL may carry a password.
#[derive(Clone)]
pub(super) enum Place {
    File(PathBuf),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Place {
    /// The builder for this place, nothing else set.
    pub(super) fn builder(&self) -> ShopBuilder {
        match self {
            Place::File(path) => Shop::builder(path),
            Place::Postgres { url, schema } => Shop::builder(url).pg_schema(schema),
        }
    }

    /// The same place's twin for the raw baseline: `raw.db` beside the
    /// temp file, or the schema `<schema>_raw`.
    pub(super) fn raw_twin(&self, dir: &Path) -> Place {
        match self {
            Place::File(_) => Place::File(dir.join("raw.db")),
            Place::Postgres { url, schema } => Place::Postgres {
                url: url.clone(),
                schema: format!("{schema}_raw"),
            },
        }
    }

    /// Where it is, without a password.
    pub(super) fn describe(&self) -> String {
        match self {
            Place::File(path) => path.display().to_string(),
            Place::Postgres { schema, .. } => format!("PostgreSQL schema {schema}"),
        }
    }

    pub(super) fn backend(&self) -> &'static str {
        match self {
            Place::File(_) => "sqlite",
            Place::Postgres { .. } => "postgres",
        }
    }
}

/// A direct connection for the checks and the report: counts and
/// `(text, count)` rows from SQL with no parameters.
pub(super) enum Peek {
    File(Connection),
    #[cfg(feature = "postgres")]
    Postgres(postgres::Client),
}

impl Peek {
    pub(super) fn open(place: &Place) -> Peek {
        match place {
            Place::File(path) => Peek::File(Connection::open(path).expect("open for checks")),
            #[cfg(feature = "postgres")]
            Place::Postgres { url, schema } => Peek::Postgres(pg_client(url, schema)),
            #[cfg(not(feature = "postgres"))]
            Place::Postgres { .. } => unreachable!("refused in main without the feature"),
        }
    }

    pub(super) fn count(&mut self, sql: &str) -> i64 {
        match self {
            Peek::File(conn) => conn.query_row(sql, [], |row| row.get(0)).expect(sql),
            #[cfg(feature = "postgres")]
            Peek::Postgres(client) => client.query_one(sql, &[]).expect(sql).get(0),
        }
    }

    pub(super) fn pairs(&mut self, sql: &str) -> Vec<(String, i64)> {
        match self {
            Peek::File(conn) => conn
                .prepare(sql)
                .expect("prepare")
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows"),
            #[cfg(feature = "postgres")]
            Peek::Postgres(client) => client
                .query(sql, &[])
                .expect(sql)
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
        }
    }
}

/// A plain connection with `schema` first on its search path.
#[cfg(feature = "postgres")]
pub(super) fn pg_client(url: &str, schema: &str) -> postgres::Client {
    let mut config: postgres::Config = url.parse().expect("a PostgreSQL URL");
    config.options(&format!("-c search_path={schema}"));
    config
        .connect(postgres::NoTls)
        .expect("connect to PostgreSQL")
}

/// Whether `schema` exists in the database at `url`.
#[cfg(feature = "postgres")]
pub(super) fn pg_schema_exists(url: &str, schema: &str) -> bool {
    pg_client(url, "public")
        .query_opt(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .expect("look the schema up")
        .is_some()
}

/// Drops the throwaway schemas of this run.
#[cfg(feature = "postgres")]
pub(super) fn pg_drop_schemas(url: &str, schemas: &[&str]) {
    let mut client = pg_client(url, "public");
    for schema in schemas {
        // `schema` is `loadgen_<pid>[_raw]`, an identifier made here.
        if let Err(err) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")) {
            eprintln!("dropping schema {schema}: {err}");
        }
    }
}

pub(super) fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open raw connection");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    conn.set_prepared_statement_cache_capacity(64);
    conn
}
