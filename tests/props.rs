//! Property: under any sequence of charges, the balance equals the sum of the
//! accepted amounts and the sum of the ledger, and never passes the limit.

mod common;

use common::{open_with, won};
use liteshop::{Error, PageRequest};
use proptest::prelude::*;

const MAX_CHARGE: i64 = 30_000;
const MAX_BALANCE: i64 = 100_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn balance_is_the_sum_of_accepted_charges_and_of_the_ledger(
        amounts in prop::collection::vec(0..=MAX_CHARGE + 5_000, 1..40),
    ) {
        let t = open_with(|b| b.max_charge(won(MAX_CHARGE)).max_balance(won(MAX_BALANCE)));
        let kim = t.user("Kim");
        let mut expected: i64 = 0;
        let mut accepted = 0;
        for amount in amounts {
            match t.shop.host_credit(kim.id, won(amount)) {
                Ok(balance) => {
                    prop_assert!((1..=MAX_CHARGE).contains(&amount));
                    expected += amount;
                    accepted += 1;
                    prop_assert_eq!(balance, won(expected));
                }
                Err(Error::ZeroAmount) => prop_assert_eq!(amount, 0),
                Err(Error::ChargeLimitExceeded { .. }) => prop_assert!(amount > MAX_CHARGE),
                Err(Error::BalanceLimitExceeded { .. }) => {
                    prop_assert!(expected + amount > MAX_BALANCE)
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
            prop_assert!(expected <= MAX_BALANCE);
        }
        prop_assert_eq!(t.shop.balance(kim.id)?, won(expected));
        let ledger = t.shop.ledger(kim.id, PageRequest::first(PageRequest::MAX_LIMIT))?;
        prop_assert_eq!(ledger.items.len(), accepted);
        let sum: i64 = ledger.items.iter().map(|e| e.signed_won()).sum();
        prop_assert_eq!(sum, expected);
    }
}
