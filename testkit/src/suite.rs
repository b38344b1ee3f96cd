//! The behaviour-suite macro: one behaviour, written once, proven on every
//! transport.

/// Instantiates each test `async fn name(h: Harness)` of the calling file
/// once per transport, as `<transport>::name`, on a multi-threaded tokio
/// runtime of two workers.
///
/// Each transport names how its harness is made; the expressions are
/// evaluated inside the generated module, which sees everything of the
/// calling file (`use super::*`), and may `.await`. `hold:` (optional) is
/// evaluated first and kept for the test's whole run: a lock that makes the
/// tests of a file run one at a time, for instance.
///
/// ```
/// # struct Harness;
/// # impl Harness {
/// #     fn memory() -> Self { Harness }
/// #     async fn redis() -> Self { Harness }
/// # }
/// # async fn serial() {}
/// # async fn unacked_event_is_redelivered_to_another_consumer(_h: Harness) {}
/// # async fn fatal_error_goes_to_dead_letters_without_a_retry(_h: Harness) {}
/// tidings_testkit::transport_suite! {
///     hold: serial().await,
///     transports: {
///         memory => Harness::memory(),
///         redis => Harness::redis().await,
///     },
///     tests: [
///         unacked_event_is_redelivered_to_another_consumer,
///         fatal_error_goes_to_dead_letters_without_a_retry,
///     ],
/// }
/// # fn main() {}
/// ```
///
/// expands to `mod memory { … async fn unacked_event_is_redelivered_to_another_consumer() … }`
/// and `mod redis { … }`. The calling crate depends on `tokio` (with the
/// `macros` and `rt-multi-thread` features), whose `#[tokio::test]` runs
/// each test.
#[macro_export]
macro_rules! transport_suite {
    (
        hold: $hold:expr,
        transports: { $($transport:ident => $harness:expr),+ $(,)? },
        tests: $tests:tt $(,)?
    ) => {
        $( $crate::transport_suite!(@module $transport, [$hold], $harness, $tests); )+
    };
    (
        transports: { $($transport:ident => $harness:expr),+ $(,)? },
        tests: $tests:tt $(,)?
    ) => {
        $( $crate::transport_suite!(@module $transport, [], $harness, $tests); )+
    };
    // One transport's module. `$hold` stays one token tree here: expanded
    // as a repetition inside the tests' repetition, it would have to repeat
    // as often as they do.
    (@module $transport:ident, $hold:tt, $harness:expr, [$($name:ident),* $(,)?]) => {
        mod $transport {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::transport_suite!(@hold $hold);
                    super::$name($harness).await
                }
            )*
        }
    };
    (@hold []) => {};
    // A `let` from a macro lives to the end of the enclosing block, so the
    // value is held until the test returns.
    (@hold [$hold:expr]) => {
        let _hold = $hold;
    };
}
