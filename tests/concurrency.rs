//! Real threads on a real temp-file database, with exact totals afterwards.

mod common;

use common::{open, open_with, race, won};
use liteshop::{
    Error, LedgerKind, OrderId, OrderLine, OrderStatus, PageRequest, Result, Shop, UserId,
    WriteMode,
};

/// Every ledger entry of `user`, newest first.
fn all_entries(shop: &Shop, user: UserId) -> Result<Vec<liteshop::LedgerEntry>> {
    let mut entries = Vec::new();
    let mut page = shop.ledger(user, PageRequest::first(PageRequest::MAX_LIMIT))?;
    loop {
        entries.extend(page.items);
        match page.next {
            Some(cursor) => {
                page = shop.ledger(user, PageRequest::after(cursor, PageRequest::MAX_LIMIT))?
            }
            None => return Ok(entries),
        }
    }
}

#[test]
fn a_hundred_concurrent_charges_all_land_exactly_once() -> Result<()> {
    hundred_charges(open())
}

#[test]
fn a_hundred_concurrent_charges_through_pooled_writers_all_land_exactly_once() -> Result<()> {
    hundred_charges(open_with(|b| b.write_mode(WriteMode::Pooled)))
}

#[test]
fn a_hundred_concurrent_charges_through_the_batched_writer_all_land_exactly_once() -> Result<()> {
    hundred_charges(open_with(|b| b.write_mode(WriteMode::Batched)))
}

fn hundred_charges(t: common::TestShop) -> Result<()> {
    let kim = t.user("Kim");
    let results = race(100, |_| t.shop.clone().host_credit(kim.id, won(1_000)));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(t.shop.balance(kim.id)?, won(100_000));

    let entries = all_entries(&t.shop, kim.id)?;
    assert_eq!(entries.len(), 100);
    assert!(
        entries
            .iter()
            .all(|e| e.kind == LedgerKind::HostCredit && e.amount == won(1_000))
    );
    // Serialised: each entry's resulting balance is one step above the last.
    let mut afters: Vec<i64> = entries.iter().map(|e| e.balance_after.won()).collect();
    afters.sort_unstable();
    assert_eq!(afters, (1..=100).map(|i| i * 1_000).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn fifty_concurrent_adds_of_one_product_leave_exactly_one_line() -> Result<()> {
    fifty_adds(open())
}

/// In a batch, the 49 refused adds roll back to their own savepoints and
/// leave the one accepted add in place.
#[test]
fn fifty_concurrent_adds_through_the_batched_writer_leave_exactly_one_line() -> Result<()> {
    fifty_adds(open_with(|b| b.write_mode(WriteMode::Batched)))
}

fn fifty_adds(t: common::TestShop) -> Result<()> {
    let kim = t.user("Kim");
    let tea = t.product("Tea", 1_000, 10);
    let results = race(50, |_| t.shop.add_to_cart(kim.id, tea.id, 1));
    let added = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(Error::AlreadyInCart { .. })))
        .count();
    assert_eq!((added, conflicts), (1, 49), "{results:?}");
    let cart = t.shop.cart(kim.id)?;
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.total, Some(won(1_000)));
    Ok(())
}

#[test]
fn concurrent_charges_never_cross_the_balance_limit() -> Result<()> {
    charges_against_the_limit(open_with(|b| b.max_balance(won(50_000))))
}

#[test]
fn concurrent_charges_through_the_batched_writer_never_cross_the_balance_limit() -> Result<()> {
    charges_against_the_limit(open_with(|b| {
        b.max_balance(won(50_000)).write_mode(WriteMode::Batched)
    }))
}

fn charges_against_the_limit(t: common::TestShop) -> Result<()> {
    let kim = t.user("Kim");
    t.shop.host_credit(kim.id, won(500))?;
    // 100 charges of 1,000 against 49,500 of headroom: 49 fit.
    let results = race(100, |_| t.shop.host_credit(kim.id, won(1_000)));
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::BalanceLimitExceeded { .. })))
        .count();
    assert_eq!((accepted, refused), (49, 51), "{results:?}");
    assert_eq!(t.shop.balance(kim.id)?, won(49_500));
    // Every refused charge left no ledger row: 1 setup + 49 accepted.
    let entries = all_entries(&t.shop, kim.id)?;
    assert_eq!(entries.len(), 50);
    let sum: i64 = entries.iter().map(|e| e.signed_won()).sum();
    assert_eq!(sum, 49_500);
    Ok(())
}

#[test]
fn charges_of_many_users_from_many_threads_add_up_per_user() -> Result<()> {
    let t = open();
    let users: Vec<UserId> = (0..8).map(|i| t.user(&format!("u{i}")).id).collect();
    let results = race(64, |i| {
        (0..5)
            .map(|_| t.shop.host_credit(users[i % users.len()], won(100)))
            .collect::<Result<Vec<_>>>()
    });
    assert!(results.iter().all(Result::is_ok));
    for user in users {
        // 64 threads over 8 users: 8 threads × 5 charges × 100 won each.
        assert_eq!(t.shop.balance(user)?, won(4_000));
        assert_eq!(all_entries(&t.shop, user)?.len(), 40);
    }
    Ok(())
}

#[test]
fn a_hundred_threads_ordering_ten_units_never_oversell() -> Result<()> {
    never_oversell(open())
}

#[test]
fn a_hundred_threads_ordering_through_the_batched_writer_never_oversell() -> Result<()> {
    never_oversell(open_with(|b| b.write_mode(WriteMode::Batched)))
}

fn never_oversell(t: common::TestShop) -> Result<()> {
    let users: Vec<UserId> = (0..100)
        .map(|i| {
            let id = t.user(&format!("buyer {i}")).id;
            t.shop.host_credit(id, won(1_000_000)).unwrap();
            id
        })
        .collect();
    // Twenty rounds to shake out rare interleavings.
    for round in 0..20 {
        let product = t.product(&format!("limited {round}"), 1_000, 10).id;
        let results = race(100, |i| {
            t.shop.place_order(users[i], &[OrderLine::new(product, 1)])
        });
        let placed: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let short = results
            .iter()
            .filter(|r| {
                matches!(r, Err(Error::InsufficientStock { product: p, requested: 1, available: 0 }) if *p == product)
            })
            .count();
        assert_eq!(
            (placed.len(), short),
            (10, 90),
            "round {round}: {results:?}"
        );
        assert_eq!(t.shop.product(product)?.stock, 0, "round {round}");
        let ordered: u32 = placed
            .iter()
            .flat_map(|o| &o.lines)
            .map(|l| l.quantity)
            .sum();
        assert_eq!(ordered, 10, "round {round}");
    }
    Ok(())
}

/// A flash sale: 256 buyers released at once on 25 units, each placing an
/// order for one and paying it from the balance, on a product whose row
/// every buyer's order and payment take: exactly 25 win and pay once, the
/// others are told the stock ran out, and every won, unit and sale is
/// where it should be.
#[test]
fn a_flash_sale_of_256_buyers_sells_exactly_its_units_each_paid_once() -> Result<()> {
    const BUYERS: usize = 256;
    const UNITS: u32 = 25;
    let t = open();
    let users: Vec<UserId> = (0..BUYERS)
        .map(|i| {
            let id = t.user(&format!("buyer {i}")).id;
            t.shop.host_credit(id, won(1_500)).unwrap();
            id
        })
        .collect();
    let product = t.product("limited", 1_000, UNITS).id;
    let results = race(BUYERS, |i| {
        let order = t
            .shop
            .place_order(users[i], &[OrderLine::new(product, 1)])?;
        t.shop.pay_from_balance(users[i], order.id)
    });
    let paid: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let short = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InsufficientStock { product: p, .. }) if *p == product))
        .count();
    assert_eq!(
        (paid.len(), short),
        (UNITS as usize, BUYERS - UNITS as usize),
        "{results:?}"
    );
    let p = t.shop.product(product)?;
    assert_eq!((p.stock, p.held), (0, UNITS));
    for (i, result) in results.iter().enumerate() {
        let expected = if result.is_ok() { 500 } else { 1_500 };
        assert_eq!(t.shop.balance(users[i])?, won(expected), "buyer {i}");
        let orders = t.shop.orders(users[i], PageRequest::first(10))?.items;
        let statuses: Vec<OrderStatus> = orders.iter().map(|o| o.status).collect();
        let wanted: &[OrderStatus] = if result.is_ok() {
            &[OrderStatus::Paid]
        } else {
            &[]
        };
        assert_eq!(statuses, wanted, "buyer {i}");
    }
    let best = t.shop.best_sellers(1, 10)?;
    assert_eq!(best.len(), 1);
    assert_eq!(
        (best[0].product, best[0].units),
        (product, u64::from(UNITS))
    );
    assert!(t.shop.audit()?.is_clean());
    Ok(())
}

#[test]
fn concurrent_two_line_orders_are_all_or_nothing() -> Result<()> {
    let t = open();
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(1_000_000))?;
    let a = t.product("A", 100, 5).id;
    let b = t.product("B", 100, 1).id;
    let results = race(20, |_| {
        t.shop
            .place_order(kim, &[OrderLine::new(a, 1), OrderLine::new(b, 1)])
    });
    let placed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(placed, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::InsufficientStock { product, .. } if *product == b))
    );
    assert_eq!((t.shop.product(a)?.stock, t.shop.product(b)?.stock), (4, 0));
    let orders = t.shop.orders(kim, PageRequest::first(100))?.items;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].lines.len(), 2);
    Ok(())
}

#[test]
fn orders_check_the_balance_but_do_not_hold_it() -> Result<()> {
    let t = open();
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(50_000))?;
    let tea = t.product("Tea", 10_000, 100).id;
    let results = race(10, |_| t.shop.place_order(kim, &[OrderLine::new(tea, 1)]));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(t.shop.balance(kim)?, won(50_000));
    assert_eq!(t.shop.product(tea)?.stock, 90);
    let orders = t.shop.orders(kim, PageRequest::first(100))?.items;
    assert_eq!(orders.len(), 10);
    assert!(orders.iter().all(|o| o.status == OrderStatus::Pending));
    Ok(())
}

#[test]
fn racing_cancels_and_expiry_release_stock_exactly_once() -> Result<()> {
    let t = open();
    let kim = t.user("Kim").id;
    t.shop.host_credit(kim, won(1_000_000))?;
    let tea = t.product("Tea", 100, 50).id;
    let orders: Vec<OrderId> = (0..10)
        .map(|_| {
            t.shop
                .place_order(kim, &[OrderLine::new(tea, 5)])
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(t.shop.product(tea)?.stock, 0);
    t.clock.advance(t.shop.reservation_time());
    // Ten threads cancel every order while ten others expire them.
    let results = race(20, |i| {
        if i % 2 == 0 {
            orders
                .iter()
                .filter(|&&id| t.shop.cancel_order(kim, id).is_ok())
                .count()
        } else {
            t.shop.expire_orders().unwrap()
        }
    });
    // Each order ended cancelled exactly once, by one caller or the other.
    assert_eq!(results.iter().sum::<usize>(), 10, "{results:?}");
    assert_eq!(t.shop.product(tea)?.stock, 50);
    for id in orders {
        assert_eq!(t.shop.order(kim, id)?.status, OrderStatus::Cancelled);
    }
    Ok(())
}

/// While another connection holds the write lock longer than the busy
/// timeout, writers queue behind a leader stuck in SQLite's busy wait: each
/// either lands or returns `Busy`, and a write that returned `Busy` is never
/// applied later — after the lock goes, the ledger holds exactly the
/// charges that returned `Ok`, each once.
#[test]
fn a_write_that_timed_out_in_the_queue_never_runs() -> Result<()> {
    if common::sqlite_only("it holds SQLite's write lock from another connection") {
        return Ok(());
    }
    let t = open_with(|b| {
        b.write_mode(WriteMode::Batched)
            .busy_timeout(std::time::Duration::from_millis(60))
    });
    let kim = t.user("Kim").id;
    let blocker = std::thread::scope(|s| -> Result<Vec<Result<i64>>> {
        let path = t.path.clone();
        let (locked, wait_locked) = std::sync::mpsc::channel();
        let holder = s.spawn(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(400));
            conn.execute_batch("COMMIT").unwrap();
        });
        wait_locked.recv().unwrap();
        // Distinct amounts name each call in the ledger.
        let results = race(24, |i| {
            let amount = 1_000 + i as i64;
            t.shop.host_credit(kim, won(amount)).map(|_| amount)
        });
        holder.join().unwrap();
        Ok(results)
    })?;
    let busy = blocker
        .iter()
        .filter(|r| matches!(r, Err(Error::Busy(_))))
        .count();
    assert!(
        busy > 0,
        "the lock outlasted the timeout, so some writes gave up"
    );
    assert!(
        blocker
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::Busy(_)))),
        "only Ok or Busy: {blocker:?}"
    );
    // Whatever was still queued or waiting has had its chance to (wrongly)
    // run by now: one more write goes through the same queue.
    t.shop.host_credit(kim, won(1))?;
    let mut landed: Vec<i64> = all_entries(&t.shop, kim)?
        .iter()
        .filter(|e| e.kind == LedgerKind::HostCredit && e.amount != won(1))
        .map(|e| e.amount.won())
        .collect();
    landed.sort_unstable();
    let mut ok: Vec<i64> = blocker
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    ok.sort_unstable();
    assert_eq!(landed, ok);
    Ok(())
}
