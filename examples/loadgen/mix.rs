//! Running the mix: the worker threads, what each one carries, and the
//! statistics they gather, against any [`Target`].

use super::*;

/// Something the mix runs against: liteshop or a raw baseline, one step
/// of the workload ([`Step`], drawn once for every target) at a time.
/// `None` means the target does not run that kind of step (the baselines
/// have no refunds or coupons); it is not counted.
pub(super) trait Target: Sync {
    fn run(&self, step: Step, worker: &mut Worker) -> Option<Result<(), String>>;
}

/// One worker's state: its generator, the orders it placed and may pay or
/// cancel, the orders it paid and may refund, and (for the raw baseline) its
/// own connection.
pub(super) struct Worker {
    pub(super) rng: Rng,
    pub(super) orders: VecDeque<(UserId, OrderId)>,
    pub(super) paid: VecDeque<(UserId, OrderId)>,
    pub(super) coupons: Vec<(UserId, CouponId)>,
    pub(super) conn: Option<RawConn>,
}

/// A raw baseline's own connection.
pub(super) enum RawConn {
    File(Connection),
    #[cfg(feature = "postgres")]
    Postgres(Box<raw_pg::Conn>),
}

impl RawConn {
    pub(super) fn open(place: &Place) -> RawConn {
        match place {
            Place::File(path) => RawConn::File(raw_connection(path)),
            #[cfg(feature = "postgres")]
            Place::Postgres { url, schema } => {
                RawConn::Postgres(Box::new(raw_pg::Conn::new(pg_client(url, schema))))
            }
            #[cfg(not(feature = "postgres"))]
            Place::Postgres { .. } => unreachable!("refused in main without the feature"),
        }
    }
}

/// What one thread measured of one operation.
#[derive(Clone)]
pub(super) struct Stats {
    pub(super) count: u64,
    pub(super) ok: u64,
    pub(super) refused: BTreeMap<String, u64>,
    pub(super) latency_us: Histogram<u64>,
}

impl Stats {
    pub(super) fn new() -> Stats {
        Stats {
            count: 0,
            ok: 0,
            refused: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
        }
    }

    pub(super) fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.ok += other.ok;
        for (kind, n) in &other.refused {
            *self.refused.entry(kind.clone()).or_default() += n;
        }
        self.latency_us.add(&other.latency_us).expect("same bounds");
    }
}

/// Runs the mix on `threads` threads until the time or op budget is spent.
pub(super) fn run_mix(
    args: &Args,
    mix: &[(Op, u32)],
    target: &dyn Target,
    world: &World,
    raw_db: Option<&Place>,
    label: &str,
) -> (BTreeMap<Op, Stats>, Duration) {
    let total_weight: u32 = mix.iter().map(|(_, w)| w).sum();
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let budget = args.ops;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(budget.unwrap_or(args.seconds * 1_000));
        bar.set_style(
            ProgressStyle::with_template(&format!("{label:>9} [{{bar:40}}] {{msg}}"))
                .expect("template")
                .progress_chars("=> "),
        );
        bar
    };
    let per_thread: Vec<BTreeMap<Op, Stats>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let done = &done;
                scope.spawn(move || {
                    let mut worker = Worker {
                        rng: Rng(0x1234_5678_9abc_def1 ^ ((t as u64 + 1) * 0x9e37_79b9)),
                        orders: VecDeque::new(),
                        paid: VecDeque::new(),
                        coupons: Vec::new(),
                        conn: raw_db.map(RawConn::open),
                    };
                    let mut stats: BTreeMap<Op, Stats> = BTreeMap::new();
                    loop {
                        let finished = match budget {
                            Some(max) => done.load(Ordering::Relaxed) >= max,
                            None => Instant::now() >= deadline,
                        };
                        if finished {
                            break;
                        }
                        let mut pick = worker.rng.below(u64::from(total_weight)) as u32;
                        let op = mix
                            .iter()
                            .find(|(_, w)| {
                                let hit = pick < *w;
                                pick = pick.saturating_sub(*w);
                                hit
                            })
                            .map(|(op, _)| *op)
                            .expect("weights cover the range");
                        let began = Instant::now();
                        let Some(result) = Step::draw(op, &mut worker, world)
                            .and_then(|step| target.run(step, &mut worker))
                        else {
                            continue;
                        };
                        let micros = began.elapsed().as_micros() as u64;
                        let entry = stats.entry(op).or_insert_with(Stats::new);
                        entry.count += 1;
                        entry.latency_us.saturating_record(micros.max(1));
                        match result {
                            Ok(()) => entry.ok += 1,
                            Err(kind) => *entry.refused.entry(kind).or_default() += 1,
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    stats
                })
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            let ops = done.load(Ordering::Relaxed);
            bar.set_position(budget.map_or(started.elapsed().as_millis() as u64, |_| ops));
            bar.set_message(format!("{ops} ops"));
            thread::sleep(Duration::from_millis(100));
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let mut merged: BTreeMap<Op, Stats> = BTreeMap::new();
    for stats in per_thread {
        for (op, s) in stats {
            merged.entry(op).or_insert_with(Stats::new).merge(&s);
        }
    }
    (merged, elapsed)
}
