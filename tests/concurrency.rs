//! Real threads on a real temp-file database, with exact totals afterwards.

mod common;

use std::sync::Barrier;
use std::thread;

use common::{open, open_with, won};
use liteshop::{Error, LedgerKind, PageRequest, Result, Shop, UserId};

/// Runs `f(i)` on `n` threads released together; returns the results in
/// thread order.
fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    })
}

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
    let t = open();
    let kim = t.user("Kim");
    let results = race(100, |_| t.shop.clone().charge(kim.id, won(1_000)));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(t.shop.balance(kim.id)?, won(100_000));

    let entries = all_entries(&t.shop, kim.id)?;
    assert_eq!(entries.len(), 100);
    assert!(
        entries
            .iter()
            .all(|e| e.kind == LedgerKind::Charge && e.amount == won(1_000))
    );
    // Serialised: each entry's resulting balance is one step above the last.
    let mut afters: Vec<i64> = entries.iter().map(|e| e.balance_after.won()).collect();
    afters.sort_unstable();
    assert_eq!(afters, (1..=100).map(|i| i * 1_000).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn fifty_concurrent_adds_of_one_product_leave_exactly_one_line() -> Result<()> {
    let t = open();
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
    assert_eq!(cart.total, won(1_000));
    Ok(())
}

#[test]
fn concurrent_charges_never_cross_the_balance_limit() -> Result<()> {
    let t = open_with(|b| b.max_balance(won(50_000)));
    let kim = t.user("Kim");
    t.shop.charge(kim.id, won(500))?;
    // 100 charges of 1,000 against 49,500 of headroom: 49 fit.
    let results = race(100, |_| t.shop.charge(kim.id, won(1_000)));
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
            .map(|_| t.shop.charge(users[i % users.len()], won(100)))
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
