//! `StreamScrubber`: the value detectors over chunked output. The promise under test: however
//! the input is cut, the output is the one-shot scrub of the whole input (exactly
//! `Masker::scrub` for UTF-8 text within the caps); bytes that are not UTF-8 and characters
//! split by the chunking pass intact; the scrubber holds a bounded amount; long inputs
//! without newlines cost linear time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use proptest::prelude::*;
use sod_core::masking::{MaskProfiles, Masker, REDACTED, StreamScrubber};

fn masker(strategy: &str) -> Masker {
    let extra = if strategy == "partial" {
        "detector_keep_last = 4\n"
    } else {
        ""
    };
    let toml =
        format!("[[profile]]\nname = \"agent\"\ndetector_strategy = \"{strategy}\"\n{extra}");
    MaskProfiles::from_toml("m.toml", &toml)
        .unwrap()
        .masker(&["agent".into()])
        .unwrap()
}

/// Pushes `input` cut at `cuts` (positions, any order, out of range ignored) and finishes,
/// checking the hold-back bound after every push.
fn chunked(m: &Masker, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut s = m.stream();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        s.push(&input[at..c], &mut out);
        assert!(s.held() <= StreamScrubber::MAX_HELD, "held {}", s.held());
        at = c;
    }
    s.finish(&mut out);
    out
}

fn bytewise(m: &Masker, input: &[u8]) -> Vec<u8> {
    let cuts: Vec<usize> = (1..input.len()).collect();
    chunked(m, input, &cuts)
}

const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----";

fn fragment() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "alice@example.com",
        "bob.smith+x@mail.example.co.uk",
        "user@host",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "+14155552671",
        "(415) 555-2671",
        "+44 20 7946 0958",
        "020\n7946 0958",
        "415\r\n555 2671",
        "123-45-6789",
        "AB 12 34 56 C",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "xoxb-1234567890-abcdef",
        "AccountKey=abcdefghijABCDEFGHIJabcdefghijABCDEFGHIJ0123==",
        PEM,
        "-----BEGIN PRIVATE KEY-----\nMIIBVQ",
        "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
        "-----BEGIN ",
        "-----END PRIVATE KEY-----",
        "------BEGIN EC PRIVATE KEY-----x",
        "hello",
        "order 42 shipped",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        ",",
        ";",
        ":",
        "\"",
        "(",
        ")",
        "-",
        ".",
        "@",
        "é",
        "中文",
        "。",
        "ſ",
        "\u{212a}",
        "\u{a0}",
        "😀",
        "e\u{301}",
        "\u{1b}[0m",
        "$ ",
    ]);
    prop_oneof![
        4 => fixed.prop_map(str::to_owned),
        1 => "[ -~]{0,6}",
        1 => "[0-9 ()+-]{0,12}",
        1 => "[A-Za-z0-9._-]{0,12}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|f| f.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => fragment().prop_map(String::into_bytes),
        1 => prop::sample::select(vec![
            vec![0xffu8],
            vec![0xc3],
            vec![0xe4, 0xb8],
            vec![0x80, 0x80],
            vec![0xf0, 0x9f, 0x98],
            vec![0],
            vec![0xed, 0xa0, 0x80],
        ]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..8192, 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// UTF-8 text, any chunking: exactly `Masker::scrub` of the whole text.
    #[test]
    fn chunked_output_is_the_scrub_of_the_whole(
        text in text(),
        cuts in cuts(),
        strategy in prop::sample::select(vec!["redact", "hash", "partial"]),
    ) {
        let m = masker(strategy);
        let want = m.scrub(&text).into_owned().into_bytes();
        let got = chunked(&m, text.as_bytes(), &cuts);
        prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        prop_assert_eq!(m.scrub_bytes(text.as_bytes()), want);
    }

    /// Any bytes, any strategy (`null` included), any chunking: the output does not depend on
    /// the chunking.
    #[test]
    fn output_does_not_depend_on_the_chunking(
        input in bytes(),
        cuts in cuts(),
        strategy in prop::sample::select(vec!["redact", "hash", "partial", "null"]),
    ) {
        let m = masker(strategy);
        let whole = m.scrub_bytes(&input);
        prop_assert_eq!(chunked(&m, &input, &cuts), whole.clone());
    }

    /// Byte by byte, the worst chunking, agrees too.
    #[test]
    fn byte_by_byte_agrees(input in bytes(), strategy in prop::sample::select(vec!["redact", "null"])) {
        let m = masker(strategy);
        prop_assert_eq!(bytewise(&m, &input), m.scrub_bytes(&input));
    }

    /// Without any value, the output is the input, byte for byte (binary data, split
    /// characters, escape sequences).
    #[test]
    fn clean_bytes_pass_unchanged(input in prop::collection::vec(any::<u8>(), 0..600), cuts in cuts()) {
        // Random bytes may happen to contain a value; only check inputs that do not.
        let m = masker("redact");
        let whole = m.scrub_bytes(&input);
        prop_assume!(whole == input);
        prop_assert_eq!(chunked(&m, &input, &cuts), input);
    }

    /// Long lines (past the cap) are still independent of the chunking, and exact where they
    /// have white space to cut at.
    #[test]
    fn long_lines_do_not_depend_on_the_chunking(
        unit in prop::sample::select(vec![
            "word ", "a1 2b ", "x", "4111 ", "ab.cd-", "alice@example.com ", "\u{4e2d}",
            "4111 1111 1111 1111 ", "AB 12 34 56 C ", "(415) 555 2671 ",
        ]),
        n in 500usize..3000,
        tail in text(),
        cuts in prop::collection::vec(0usize..40_000, 0..24),
    ) {
        let m = masker("redact");
        let text = format!("{}{tail}", unit.repeat(n));
        let input = text.as_bytes();
        let got = chunked(&m, input, &cuts);
        prop_assert_eq!(&got, &m.scrub_bytes(input));
        if unit.contains(' ') {
            // Cut at white space: still exact.
            prop_assert_eq!(String::from_utf8_lossy(&got), m.scrub(&text));
        }
    }
}

fn run(m: &Masker, chunks: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
    let mut s = m.stream();
    let mut out = Vec::new();
    let mut lens = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
        lens.push(out.len());
    }
    s.finish(&mut out);
    (out, lens)
}

#[test]
fn a_value_split_across_chunks_is_found() {
    let m = masker("redact");
    let (out, lens) = run(&m, &[b"to: alice@exa", b"mple.com\nok\n"]);
    assert_eq!(out, b"to: ****\nok\n");
    assert_eq!(lens[0], 4, "the possible address is held back");
    let (out, _) = run(&m, &[b"card 4111 1111 ", b"1111 1111 end\n"]);
    assert_eq!(out, b"card **** end\n");
}

#[test]
fn a_phone_number_may_span_a_newline() {
    let m = masker("redact");
    let text = "call 020\n7946 0958 now\n";
    assert_eq!(m.scrub(text), "call **** now\n");
    assert_eq!(bytewise(&m, text.as_bytes()), b"call **** now\n");
    // After a carriage return, a newline separates nothing: the line goes at once.
    let (_, lens) = run(&m, &[b"tel 020\r\n", b"7946 0958\r\n"]);
    assert_eq!(lens[0], 9);
}

#[test]
fn characters_split_by_the_chunking_stay_whole_and_other_bytes_pass() {
    let m = masker("redact");
    let input = b"caf\xc3\xa9 \xff\xfe bin\x00\x01 \xe4\xb8\xad x@y.zz \x1b[1m";
    for split in 0..input.len() {
        let (out, _) = run(&m, &[&input[..split], &input[split..]]);
        assert_eq!(
            out, b"caf\xc3\xa9 \xff\xfe bin\x00\x01 \xe4\xb8\xad **** \x1b[1m",
            "split at {split}"
        );
    }
}

#[test]
fn private_keys_are_held_to_their_end_line() {
    let m = masker("redact");
    let mut s = m.stream();
    let mut out = Vec::new();
    s.push(b"$ cat id_rsa\n", &mut out);
    assert_eq!(out, b"$ cat id_rsa\n");
    for line in PEM.split_inclusive('\n') {
        s.push(line.as_bytes(), &mut out);
        assert_eq!(
            out, b"$ cat id_rsa\n",
            "nothing of the key leaves before its end"
        );
    }
    s.push(b"\n$ ", &mut out);
    assert_eq!(out, b"$ cat id_rsa\n****\n$ ");
    s.finish(&mut out);

    // Truncated: masked to the end of the stream, as scrub does.
    let text = "x -----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC";
    assert_eq!(bytewise(&m, text.as_bytes()), m.scrub(text).as_bytes());
    assert_eq!(m.scrub(text), "x ****");
    // A certificate is not a key.
    let cert = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
    let (out, lens) = run(&m, &[cert.as_bytes()]);
    assert_eq!(out, cert.as_bytes());
    assert_eq!(lens[0], cert.len());
}

#[test]
fn a_key_longer_than_the_cap_is_masked_whole_and_memory_stays_bounded() {
    let m = masker("redact");
    let body = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5MGFiY2RlZmdoaWpr\n".repeat(3000);
    let text =
        format!("before\n-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\nafter\n");
    assert!(body.len() > StreamScrubber::KEY_CAP);
    let input = text.as_bytes();
    let mut s = m.stream();
    let mut out = Vec::new();
    for c in input.chunks(1000) {
        s.push(c, &mut out);
        assert!(s.held() <= StreamScrubber::MAX_HELD);
    }
    s.finish(&mut out);
    assert_eq!(out, format!("before\n{REDACTED}\nafter\n").as_bytes());
    // With redact, that is exactly what one-shot scrubbing gives.
    assert_eq!(out, m.scrub(&text).as_bytes());
    assert_eq!(bytewise(&m, input), out);
}

#[test]
fn back_to_back_keys_stay_within_the_bound() {
    let m = masker("redact");
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}-----END PRIVATE KEY-----",
        "QUJD\n".repeat(12_000)
    );
    assert!(key.len() < StreamScrubber::KEY_CAP);
    let input = format!("{key}{key}{key}x\n");
    let cuts: Vec<usize> = (1..input.len() / 1000).map(|i| i * 1000).collect();
    let out = chunked(&m, input.as_bytes(), &cuts);
    assert_eq!(out, m.scrub_bytes(input.as_bytes()));
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("QUJD"), "{out}");
    assert!(out.ends_with("x\n"));
}

#[test]
fn over_long_lines_are_cut_at_white_space_or_masked_as_one_value() {
    let m = masker("redact");
    // Prose without a newline: cut at spaces, exactly as scrub.
    let prose = "the order 4111 1111 1111 1111 shipped to bob@example.org on time ".repeat(2000);
    let (out, _) = run(&m, &[prose.as_bytes()]);
    assert_eq!(out, m.scrub(&prose).as_bytes());
    assert_eq!(
        bytewise(&m, &prose.as_bytes()[..20_000]),
        m.scrub(&prose[..20_000]).as_bytes()
    );
    // One token of 10 KiB: fail closed.
    let blob = format!("x={}\nok\n", "QUJD".repeat(2560));
    let (out, _) = run(&m, &[blob.as_bytes()]);
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("QUJDQUJD"), "{out}");
    assert!(out.ends_with("\nok\n"));
}

#[test]
fn the_null_strategy_blanks_lines_with_values() {
    let m = masker("null");
    let text = "id 1\nmail alice@example.com today\nid 2\n";
    assert_eq!(bytewise(&m, text.as_bytes()), b"id 1\n\nid 2\n");
    let key = format!("a\n{PEM}\nb\n");
    assert_eq!(bytewise(&m, key.as_bytes()), b"a\n\n\n\n\nb\n");
}

#[test]
fn flush_lets_out_what_is_held_and_masks_a_value_that_goes_on() {
    let m = masker("redact");
    let mut s = m.stream();
    let mut out = Vec::new();
    s.push(b"n: 42 ", &mut out);
    assert_eq!(out, b"n: ", "`42 ` may be the start of a number: it waits");
    s.flush(&mut out);
    assert_eq!(out, b"n: 42 ");
    assert_eq!(s.held(), 0);
    // A token already recognizable when flushed: its rest is masked too.
    s.push(b"$ echo ghp_0123456789abcdefghijABCDEFGHIJ012345", &mut out);
    s.flush(&mut out);
    s.push(b"6789 done\n", &mut out);
    s.finish(&mut out);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, "n: 42 $ echo ******** done\n");
    // A character split by the chunking stays held through a flush.
    let mut s = m.stream();
    let mut out = Vec::new();
    s.push(b"caf\xc3", &mut out);
    s.flush(&mut out);
    assert_eq!(out, b"caf");
    s.push(b"\xa9", &mut out);
    s.finish(&mut out);
    assert_eq!(out, "café".as_bytes());
}

#[test]
fn no_detectors_pass_everything_at_once() {
    let m = Masker::none();
    let mut s = m.stream();
    assert!(s.is_passthrough());
    let mut out = Vec::new();
    s.push(b"alice@exa", &mut out);
    assert_eq!(out, b"alice@exa");
}

/// Ten MiB without a newline, in SSH-sized chunks and through the forced cuts: linear time
/// (this completes in well under a second in a release build; see the throughput test).
#[test]
fn ten_mib_on_one_line() {
    let m = masker("redact");
    for unit in ["lorem ipsum dolor sit amet ", "QUJD", "4111 "] {
        let input = unit.repeat(10 * 1024 * 1024 / unit.len());
        let mut s = m.stream();
        let mut out = Vec::with_capacity(input.len());
        for c in input.as_bytes().chunks(32 * 1024) {
            s.push(c, &mut out);
            assert!(s.held() <= 2 * StreamScrubber::LINE_CAP + 1);
        }
        s.finish(&mut out);
        if unit.starts_with("lorem") {
            assert_eq!(out, input.as_bytes());
        }
    }
}
