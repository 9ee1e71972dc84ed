//! Seed flows 1 and 2: balance lookup and charge, and the ledger behind them.

mod common;

use common::{open, open_with, won};
use liteshop::{Clock, Error, ErrorKind, LedgerKind, Money, PageRequest, Result, UserId};

#[test]
fn a_new_user_has_a_zero_balance_and_an_empty_ledger() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    assert_eq!(t.shop.balance(kim.id)?, Money::ZERO);
    assert!(
        t.shop
            .ledger(kim.id, PageRequest::first(10))?
            .items
            .is_empty()
    );
    Ok(())
}

#[test]
fn charge_adds_to_the_balance_and_writes_a_ledger_entry() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    assert_eq!(t.shop.host_credit(kim.id, won(10_000))?, won(10_000));
    assert_eq!(t.shop.host_credit(kim.id, won(2_500))?, won(12_500));
    assert_eq!(t.shop.balance(kim.id)?, won(12_500));

    let ledger = t.shop.ledger(kim.id, PageRequest::first(10))?;
    assert_eq!(ledger.items.len(), 2);
    let newest = &ledger.items[0];
    assert_eq!(newest.kind, LedgerKind::HostCredit);
    assert_eq!(newest.user, kim.id);
    assert_eq!(newest.amount, won(2_500));
    assert_eq!(newest.balance_after, won(12_500));
    assert_eq!(newest.signed_won(), 2_500);
    assert_eq!(newest.created_at, t.clock.now());
    assert_eq!(ledger.items[1].balance_after, won(10_000));
    assert!(ledger.items[0].id > ledger.items[1].id);
    Ok(())
}

#[test]
fn charges_exactly_at_both_limits_are_accepted() -> Result<()> {
    let t = open_with(|b| b.max_charge(won(1_000)).max_balance(won(3_000)));
    let kim = t.user("Kim");
    for _ in 0..3 {
        t.shop.host_credit(kim.id, won(1_000))?;
    }
    assert_eq!(t.shop.balance(kim.id)?, won(3_000));
    Ok(())
}

#[test]
fn charge_of_zero_is_refused_and_changes_nothing() {
    let t = open();
    let kim = t.user("Kim");
    let before = t.dump();
    let err = t.shop.host_credit(kim.id, Money::ZERO).unwrap_err();
    assert!(matches!(err, Error::ZeroAmount), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(t.dump(), before);
}

#[test]
fn charge_to_an_unknown_user_is_not_found_and_changes_nothing() {
    let t = open();
    t.user("Kim");
    let before = t.dump();
    let err = t
        .shop
        .host_credit(UserId::new(999), won(1_000))
        .unwrap_err();
    assert!(
        matches!(err, Error::UserNotFound(id) if id == UserId::new(999)),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(t.dump(), before);
}

#[test]
fn charge_with_an_invalid_id_is_invalid_input_and_changes_nothing() {
    let t = open();
    let before = t.dump();
    let err = t.shop.host_credit(UserId::new(0), won(1_000)).unwrap_err();
    assert!(matches!(err, Error::InvalidId { id: 0, .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(t.dump(), before);
}

#[test]
fn charge_over_the_per_charge_limit_is_refused_and_changes_nothing() -> Result<()> {
    let t = open_with(|b| b.max_charge(won(5_000)));
    let kim = t.user("Kim");
    t.shop.host_credit(kim.id, won(1_000))?;
    let before = t.dump();
    let err = t.shop.host_credit(kim.id, won(5_001)).unwrap_err();
    assert!(
        matches!(err, Error::ChargeLimitExceeded { amount, limit }
            if amount == won(5_001) && limit == won(5_000)),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(t.dump(), before);
    assert_eq!(t.shop.balance(kim.id)?, won(1_000));
    Ok(())
}

#[test]
fn charge_past_the_balance_limit_is_refused_and_changes_nothing() -> Result<()> {
    let t = open_with(|b| b.max_balance(won(10_000)));
    let kim = t.user("Kim");
    t.shop.host_credit(kim.id, won(9_000))?;
    let before = t.dump();
    let err = t.shop.host_credit(kim.id, won(1_001)).unwrap_err();
    assert!(
        matches!(err, Error::BalanceLimitExceeded { balance, held, amount, limit }
            if balance == won(9_000) && held == Money::ZERO && amount == won(1_001) && limit == won(10_000)),
        "{err:?}"
    );
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn a_charge_that_would_overflow_is_refused_as_over_the_limit() -> Result<()> {
    let t = open_with(|b| b.max_charge(Money::MAX).max_balance(Money::MAX));
    let kim = t.user("Kim");
    t.shop.host_credit(kim.id, Money::MAX)?;
    let before = t.dump();
    let err = t.shop.host_credit(kim.id, won(1)).unwrap_err();
    assert!(matches!(err, Error::BalanceLimitExceeded { .. }), "{err:?}");
    assert_eq!(t.dump(), before);
    Ok(())
}

#[test]
fn charge_checks_run_in_the_seeds_order() {
    let t = open_with(|b| b.max_charge(won(100)));
    // Input is checked before the user is looked up...
    let err = t
        .shop
        .host_credit(UserId::new(42), Money::ZERO)
        .unwrap_err();
    assert!(matches!(err, Error::ZeroAmount), "{err:?}");
    // ...and the user before the limits.
    let err = t.shop.host_credit(UserId::new(42), won(1_000)).unwrap_err();
    assert!(matches!(err, Error::UserNotFound(_)), "{err:?}");
}

#[test]
fn balance_of_an_unknown_or_invalid_user_is_refused() {
    let t = open();
    assert!(matches!(
        t.shop.balance(UserId::new(7)),
        Err(Error::UserNotFound(id)) if id == UserId::new(7)
    ));
    assert!(matches!(
        t.shop.balance(UserId::new(-1)),
        Err(Error::InvalidId { id: -1, .. })
    ));
}

#[test]
fn the_ledger_pages_newest_first_and_sums_to_the_balance() -> Result<()> {
    let t = open();
    let kim = t.user("Kim");
    let lee = t.user("Lee");
    for amount in 1..=25 {
        t.shop.host_credit(kim.id, won(amount * 100))?;
        t.shop.host_credit(lee.id, won(7))?;
    }
    let mut entries = Vec::new();
    let mut page = t.shop.ledger(kim.id, PageRequest::first(10))?;
    loop {
        entries.extend(page.items);
        match page.next {
            Some(cursor) => page = t.shop.ledger(kim.id, PageRequest::after(cursor, 10))?,
            None => break,
        }
    }
    assert_eq!(entries.len(), 25);
    assert!(entries.iter().all(|e| e.user == kim.id));
    assert!(entries.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(entries[0].amount, won(2_500));
    let sum: i64 = entries.iter().map(|e| e.signed_won()).sum();
    assert_eq!(won(sum), t.shop.balance(kim.id)?);
    assert_eq!(entries[0].balance_after, t.shop.balance(kim.id)?);
    Ok(())
}

#[test]
fn ledger_refuses_bad_page_sizes_and_unknown_users() {
    let t = open();
    let kim = t.user("Kim");
    for size in [0, PageRequest::MAX_LIMIT + 1] {
        let err = t.shop.ledger(kim.id, PageRequest::first(size)).unwrap_err();
        assert!(matches!(err, Error::InvalidPageSize { requested, .. } if requested == size));
    }
    let err = t
        .shop
        .ledger(UserId::new(99), PageRequest::first(10))
        .unwrap_err();
    assert!(matches!(err, Error::UserNotFound(_)));
}

/// A write reads the balance as its check that the user exists: a user
/// whose balance row is gone (damage from outside) is refused with
/// `BalanceMissing`, not taken for a missing user, and nothing changes;
/// a user that does not exist is still `UserNotFound`.
#[test]
fn a_missing_balance_row_is_reported_as_such_and_changes_nothing() {
    let t = open();
    let kim = t.user("Kim").id;
    let tea = t.product("Tea", 1_000, 5).id;
    assert_eq!(kim.get(), 1, "the row deleted below is Kim's");
    common::execute_outside(&t, "DELETE FROM balances WHERE user_id = 1");
    let before = t.dump();
    assert!(matches!(
        t.shop.host_credit(kim, won(1_000)),
        Err(Error::BalanceMissing(user)) if user == kim
    ));
    assert!(matches!(
        t.shop.place_order(kim, &[liteshop::OrderLine::new(tea, 1)]),
        Err(Error::BalanceMissing(user)) if user == kim
    ));
    assert_eq!(t.dump(), before);
    assert!(matches!(
        t.shop.host_credit(UserId::new(99), won(1_000)),
        Err(Error::UserNotFound(_))
    ));
}

#[test]
fn an_operator_grants_and_takes_back_with_a_note_and_bad_input_changes_nothing() -> Result<()> {
    let t = open();
    let kim = t.user("Kim").id;
    assert_eq!(t.shop.grant(kim, won(5_000), "late delivery")?, won(5_000));
    let before = t.dump();
    for (result, what) in [
        (t.shop.grant(kim, won(1), ""), "an empty note"),
        (t.shop.grant(kim, won(1), " padded"), "a padded note"),
        (t.shop.grant(kim, Money::ZERO, "zero"), "zero"),
        (
            t.shop.take_back(kim, won(5_001), "too much"),
            "more than the balance",
        ),
    ] {
        assert!(result.is_err(), "{what}");
    }
    assert!(matches!(
        t.shop.take_back(kim, won(5_001), "too much"),
        Err(Error::InsufficientBalance { .. })
    ));
    assert_eq!(t.dump(), before);
    assert_eq!(
        t.shop.take_back(kim, won(2_000), "granted twice")?,
        won(3_000)
    );
    let kinds: Vec<(LedgerKind, Option<String>)> = t
        .shop
        .ledger(kim, PageRequest::first(10))?
        .items
        .into_iter()
        .map(|e| (e.kind, e.note))
        .collect();
    assert_eq!(
        kinds,
        [
            (LedgerKind::TakeBack, Some("granted twice".into())),
            (LedgerKind::Grant, Some("late delivery".into())),
        ]
    );
    let audit = t.shop.audit()?;
    assert!(audit.is_clean(), "{audit}");
    assert_eq!(audit.figures.charged, 3_000);
    Ok(())
}
