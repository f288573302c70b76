//! Time as the domain sees it: milliseconds since the Unix epoch, printed as
//! RFC 3339 in UTC with millisecond precision (`2026-11-28T14:00:00.120Z`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// The instant that [`Display`](fmt::Display) printed as `text`
    /// (`2026-11-28T14:00:00.120Z`); `None` for any other text. Only this
    /// form: it reads back what DOFS wrote, not RFC 3339 at large.
    pub fn parse_printed(text: &str) -> Option<Timestamp> {
        let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
        let (year_month, day) = date.rsplit_once('-')?;
        let (year, month) = year_month.rsplit_once('-')?;
        let (hms, millis) = time.split_once('.')?;
        let mut hms = hms.splitn(3, ':');
        let field =
            |t: Option<&str>, max: i64| t?.parse::<i64>().ok().filter(|n| (0..=max).contains(n));
        let year = year.parse::<i64>().ok().filter(|y| y.abs() <= 1_000_000)?;
        let (month, day) = (field(Some(month), 12)?, field(Some(day), 31)?);
        let (hour, minute, second) = (
            field(hms.next(), 23)?,
            field(hms.next(), 59)?,
            field(hms.next(), 59)?,
        );
        let millis = field(Some(millis), 999)?;
        let days = days_from_civil(year, month as u32, day as u32);
        let t = Timestamp(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis);
        // Whatever prints otherwise (a day past the month's end, a missing
        // zero, a sign) was not printed by `Display`.
        (t.to_string() == text).then_some(t)
    }
}

/// Deserializes a [`Timestamp`] from the text it prints as (`serde(deserialize_with)`),
/// for JSON that DOFS wrote with `Timestamp`'s `Serialize`.
pub fn deserialize_printed<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    Timestamp::parse_printed(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("not a timestamp as DOFS prints them: {text:?}"))
    })
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// (year, month, day) in the proleptic Gregorian calendar to days since the epoch.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since the epoch to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_rfc3339_utc_with_milliseconds() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_874_400_120).to_string(),
            "2026-11-28T14:00:00.120Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn printed_timestamps_read_back_as_the_same_instant() {
        for t in [
            0,
            1_795_874_400_120,
            951_782_400_000,
            -1,
            -62_135_596_800_000,
        ] {
            let text = Timestamp(t).to_string();
            assert_eq!(
                Timestamp::parse_printed(&text),
                Some(Timestamp(t)),
                "{text}"
            );
        }
        for bad in [
            "2026-11-28T14:00:00Z",
            "2026-11-28T14:00:00.12Z",
            "2026-11-28 14:00:00.120Z",
            "2026-11-28T14:00:00.120+00:00",
            "2026-02-30T14:00:00.120Z",
            "2026-11-28T24:00:00.000Z",
            "soon",
            "",
        ] {
            assert_eq!(Timestamp::parse_printed(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_printed_timestamp_reads_back(t in -100_000_000_000_000i64..100_000_000_000_000) {
            proptest::prop_assert_eq!(Timestamp::parse_printed(&Timestamp(t).to_string()), Some(Timestamp(t)));
        }
    }
}
