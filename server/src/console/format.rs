//! How the console writes figures for a person: money with thousands
//! separators, times in the shop's UTC offset, ages in words.

use liteshop::Timestamp;

/// `2026-11-25 21:47:05` in the zone `offset_minutes` east of UTC.
pub(crate) fn time(at: Timestamp, offset_minutes: i32) -> String {
    let ms = at.as_millis() + i64::from(offset_minutes) * 60_000;
    let seconds = ms.div_euclid(1_000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

/// The zone of `offset_minutes`, as `UTC+09:00`.
pub(crate) fn zone(offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let minutes = offset_minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// How long ago, in the largest whole unit: `3 s`, `12 min`, `5 h`, `2 d`.
pub(crate) fn age(from: Timestamp, now: Timestamp) -> String {
    let seconds = (now.as_millis() - from.as_millis()).max(0) / 1_000;
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// `1,234,567` — an integer with thousands separators (an audit's sums
/// over the whole shop are 128-bit).
pub(crate) fn grouped(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `₩1,234,567`.
pub(crate) fn won(n: impl Into<i128>) -> String {
    format!("₩{}", grouped(n))
}

/// The civil date of a day number (days since 1970-01-01), by Howard
/// Hinnant's algorithm.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_in_the_shops_zone() {
        let at = Timestamp::from_millis(1_795_642_827_868); // 2026-11-25 21:40:27 UTC
        assert_eq!(time(at, 0), "2026-11-25 21:40:27");
        assert_eq!(time(at, 9 * 60), "2026-11-26 06:40:27");
        assert_eq!(time(Timestamp::from_millis(0), -60), "1969-12-31 23:00:00");
        assert_eq!(
            time(Timestamp::from_millis(951_782_400_000), 0),
            "2000-02-29 00:00:00"
        );
        assert_eq!(zone(540), "UTC+09:00");
        assert_eq!(zone(-330), "UTC-05:30");
    }

    #[test]
    fn money_and_ages_read_like_a_person_writes_them() {
        assert_eq!(won(0), "₩0");
        assert_eq!(won(1_234_567), "₩1,234,567");
        assert_eq!(grouped(-1_000), "-1,000");
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(age(Timestamp::from_millis(9_990_000), now), "10 s");
        assert_eq!(
            age(Timestamp::from_millis(10_000_000 - 7_200_000), now),
            "2 h"
        );
    }
}
