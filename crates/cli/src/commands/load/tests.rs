//! Unit tests of the load generator.

use super::*;

#[test]
fn the_invalid_ratio_picks_exactly_that_share_spread_over_the_run() {
    for (ratio, expected) in [(0.0, 0), (0.1, 100), (0.25, 250), (1.0, 1000)] {
        let n = (0..1000).filter(|i| is_invalid(*i, ratio)).count();
        assert_eq!(n, expected, "{ratio}");
    }
    let first_ten = (0..10).filter(|i| is_invalid(*i, 0.1)).count();
    assert_eq!(first_ten, 1, "spread, not bunched at the end");
}

#[test]
fn every_prepared_body_is_valid_or_invalid_as_intended() {
    let bodies = Bodies::new();
    let limits = dofs_core::Limits::default();
    for b in &bodies.valid {
        assert!(
            dofs_core::validation::decode_order(b, &limits).is_ok(),
            "{b:?}"
        );
    }
    for b in &bodies.invalid {
        assert!(
            dofs_core::validation::decode_order(b, &limits).is_err(),
            "{b:?}"
        );
    }
}

#[test]
fn open_loop_needs_a_positive_rate_and_the_ratio_is_a_share() {
    let args = |extra: &[&str]| {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            load: LoadArgs,
        }
        let mut argv = vec!["load"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|c| c.load)
    };
    let plan = Plan::from_args(&args(&[]).expect("defaults")).expect("plan");
    assert_eq!(plan.mode, Mode::Closed { concurrency: 32 });
    assert_eq!(plan.duration, Some(DEFAULT_DURATION));
    let plan =
        Plan::from_args(&args(&["--rate", "500", "--orders", "10"]).expect("flags")).expect("plan");
    assert_eq!(
        plan.mode,
        Mode::Open {
            rate: 500.0,
            max_in_flight: 64
        }
    );
    assert_eq!(plan.duration, None, "--orders alone sets no time limit");
    for bad in [
        &["--rate", "0"][..],
        &["--invalid-ratio", "1.5"],
        &["--concurrency", "0"],
        &["--orders", "0"],
    ] {
        let e = Plan::from_args(&args(bad).expect("parses")).expect_err("refused");
        assert_eq!(e.exit(), Exit::Usage, "{bad:?}");
    }
}

#[test]
fn process_cpu_time_is_measured_and_grows() {
    let before = process_cpu().expect("getrusage works");
    let mut x = 0u64;
    for i in 0..5_000_000u64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x);
    let after = process_cpu().expect("measured once, measured again");
    assert!(after > before, "{before:?} then {after:?}");
}
