//! Time as the headend prints it: `Login Time : 14:02:11 UTC Tue Mar 4 2025` and
//! `Duration : 0h:05m:12s`. The civil date is computed here (no calendar dependency).

/// `HH:MM:SS UTC Day Mon D YYYY` of a Unix time in milliseconds. The day of the month is not
/// padded, as on the reference headend.
pub fn login_time(unix_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = unix_ms / 1000;
    let (days, sod) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let dow = DAYS[(days % 7) as usize];
    let mon = MONTHS[(m - 1) as usize];
    format!("{:02}:{:02}:{:02} UTC {dow} {mon} {d} {y}", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// `(year, month 1-12, day 1-31)` of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`, restricted to dates after the epoch).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `0h:05m:12s`; hours are not wrapped into days (`26h:03m:12s`).
pub fn duration(secs: u64) -> String {
    format!("{}h:{:02}m:{:02}s", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_time_matches_the_headend_layout() {
        assert_eq!(login_time(0), "00:00:00 UTC Thu Jan 1 1970");
        // 2025-03-04 14:02:11 UTC, a Tuesday.
        assert_eq!(login_time(1_741_096_931_000), "14:02:11 UTC Tue Mar 4 2025");
        // Leap day and the last second of a year.
        assert_eq!(login_time(1_709_164_800_999), "00:00:00 UTC Thu Feb 29 2024");
        assert_eq!(login_time(1_735_689_599_000), "23:59:59 UTC Tue Dec 31 2024");
        // 2000 is a leap year (divisible by 400).
        assert_eq!(login_time(951_782_400_000), "00:00:00 UTC Tue Feb 29 2000");
    }

    #[test]
    fn civil_dates_round_the_year() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(365), (1971, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0h:00m:00s");
        assert_eq!(duration(312), "0h:05m:12s");
        assert_eq!(duration(3600), "1h:00m:00s");
        assert_eq!(duration(26 * 3600 + 3 * 60 + 12), "26h:03m:12s");
    }
}
