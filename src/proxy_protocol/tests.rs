//! Golden vectors for the PROXY header parser: every accepted form, every
//! refusal, every split point, and random bytes.

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn done_with(len: usize, src: &str, dst: &str) -> Parsed {
    Parsed::Done {
        len,
        source: Some(sa(src)),
        destination: Some(sa(dst)),
    }
}

fn done_none(len: usize) -> Parsed {
    Parsed::Done {
        len,
        source: None,
        destination: None,
    }
}

/// A v2 header: signature, ver/cmd, family, length, `payload`.
fn v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(ver_cmd);
    h.push(family);
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn v2_inet_block() -> Vec<u8> {
    let mut b = vec![203, 0, 113, 7, 10, 0, 0, 1];
    b.extend_from_slice(&54321u16.to_be_bytes());
    b.extend_from_slice(&1883u16.to_be_bytes());
    b
}

fn v2_inet6_block() -> Vec<u8> {
    let src: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&40000u16.to_be_bytes());
    b.extend_from_slice(&8883u16.to_be_bytes());
    b
}

/// Every header accepted, with its expected answer.
fn valid_cases() -> Vec<(Vec<u8>, Parsed)> {
    let tcp4 = b"PROXY TCP4 203.0.113.7 10.0.0.1 54321 1883\r\n".to_vec();
    let tcp6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8883\r\n".to_vec();
    let max6 = format!("PROXY TCP6 {0} {0} 65535 65535\r\n", ["ffff"; 8].join(":"));
    let unknown_long = format!(
        "PROXY UNKNOWN {0} {0} 65535 65535\r\n",
        ["ffff"; 8].join(":")
    );
    assert_eq!(unknown_long.len(), V1_MAX_LEN, "the spec's worst case");
    let mut with_tlvs = v2_inet_block();
    with_tlvs.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // PP2_TYPE_NOOP
    vec![
        (
            tcp4.clone(),
            done_with(tcp4.len(), "203.0.113.7:54321", "10.0.0.1:1883"),
        ),
        (
            tcp6.clone(),
            done_with(tcp6.len(), "[2001:db8::7]:40000", "[2001:db8::1]:8883"),
        ),
        (
            max6.clone().into_bytes(),
            done_with(
                max6.len(),
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            ),
        ),
        (
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n".to_vec(),
            done_with(44, "0.0.0.0:0", "255.255.255.255:65535"),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), done_none(15)),
        (unknown_long.clone().into_bytes(), done_none(V1_MAX_LEN)),
        (b"PROXY UNKNOWN anything at all\r\n".to_vec(), done_none(31)),
        (
            v2(0x21, 0x11, &v2_inet_block()),
            done_with(28, "203.0.113.7:54321", "10.0.0.1:1883"),
        ),
        (
            v2(0x21, 0x12, &v2_inet_block()),
            done_with(28, "203.0.113.7:54321", "10.0.0.1:1883"),
        ),
        (
            v2(0x21, 0x11, &with_tlvs),
            done_with(34, "203.0.113.7:54321", "10.0.0.1:1883"),
        ),
        (
            v2(0x21, 0x21, &v2_inet6_block()),
            done_with(52, "[2001:db8::7]:40000", "[2001:db8::1]:8883"),
        ),
        (
            v2(0x21, 0x22, &v2_inet6_block()),
            done_with(52, "[2001:db8::7]:40000", "[2001:db8::1]:8883"),
        ),
        (v2(0x21, 0x31, &[b'/'; 216]), done_none(16 + 216)),
        (v2(0x21, 0x32, &[0; 216]), done_none(16 + 216)),
        (v2(0x21, 0x00, &[]), done_none(16)),
        (v2(0x21, 0x00, &[1, 2, 3]), done_none(19)),
        (v2(0x20, 0x00, &[]), done_none(16)),
        // LOCAL ignores the family, even one that is undefined, and its block.
        (v2(0x20, 0x11, &v2_inet_block()), done_none(28)),
        (v2(0x20, 0x77, &[]), done_none(16)),
        (
            v2(0x21, 0x11, &[0; V2_MAX_PAYLOAD]),
            done_with(MAX_HEADER_LEN, "0.0.0.0:0", "0.0.0.0:0"),
        ),
    ]
}

#[test]
fn every_valid_header_is_accepted_with_its_addresses() {
    for (bytes, want) in valid_cases() {
        assert_eq!(parse(&bytes), Ok(want), "{:02X?}", bytes);
    }
}

#[test]
fn bytes_after_the_header_are_left_for_mqtt() {
    for (mut bytes, want) in valid_cases() {
        bytes.extend_from_slice(&[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T']);
        assert_eq!(parse(&bytes), Ok(want), "{:02X?}", bytes);
    }
}

#[test]
fn every_split_point_of_a_valid_header_is_incomplete() {
    for (bytes, want) in valid_cases() {
        for k in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..k]),
                Ok(Parsed::Incomplete),
                "prefix {k} of {:02X?}",
                bytes
            );
        }
        assert_eq!(parse(&bytes), Ok(want));
    }
}

#[test]
fn plain_mqtt_is_refused_on_its_first_byte() {
    let connect = [0x10u8, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T'];
    assert!(matches!(parse(&connect[..1]), Err(ProxyError::NotProxy(_))));
    assert!(matches!(parse(&connect), Err(ProxyError::NotProxy(_))));
    for start in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"proxy ",
        b"PROXY\t",
        b"\r\n\r\n\0\r\nQUIT\r",
        b"\r\r",
    ] {
        assert!(
            matches!(parse(start), Err(ProxyError::NotProxy(_))),
            "{start:?}"
        );
    }
}

#[test]
fn invalid_v1_lines_are_refused() {
    let cases: &[&[u8]] = &[
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 000002\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n",
        b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 ::1 ::g 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.\xC3\xA9 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
        b"PROXY TCP4\r\n",
    ];
    for case in cases {
        assert!(
            matches!(parse(case), Err(ProxyError::V1Malformed(_))),
            "{:?} gave {:?}",
            String::from_utf8_lossy(case),
            parse(case)
        );
    }
}

#[test]
fn v1_without_crlf_is_refused_at_107_bytes_not_before() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_LEN - 1, b'x');
    assert_eq!(parse(&line), Ok(Parsed::Incomplete));
    line.push(b'\r');
    assert_eq!(
        parse(&line),
        Err(ProxyError::V1TooLong),
        "CRLF would make 108"
    );
    line.push(b'\n');
    assert_eq!(parse(&line), Err(ProxyError::V1TooLong));
    let mut long = b"PROXY TCP4 ".to_vec();
    long.resize(500, b'1');
    assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
}

#[test]
fn v1_refuses_a_bad_protocol_word_before_the_line_ends() {
    assert!(matches!(parse(b"PROXY X"), Err(ProxyError::V1Malformed(_))));
    assert!(matches!(
        parse(b"PROXY TCP4\t"),
        Err(ProxyError::V1Malformed(_))
    ));
    assert!(matches!(
        parse(b"PROXY TCP4 1.2\rx"),
        Err(ProxyError::V1Malformed(_))
    ));
}

#[test]
fn invalid_v2_headers_are_refused() {
    let inet = v2_inet_block();
    assert_eq!(parse(&v2(0x11, 0x11, &inet)), Err(ProxyError::V2Version(1)));
    assert_eq!(parse(&v2(0x31, 0x11, &inet)), Err(ProxyError::V2Version(3)));
    assert_eq!(parse(&v2(0x22, 0x11, &inet)), Err(ProxyError::V2Command(2)));
    assert_eq!(
        parse(&v2(0x2F, 0x11, &inet)),
        Err(ProxyError::V2Command(0xF))
    );
    for family in [0x01u8, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0xFF] {
        assert_eq!(
            parse(&v2(0x21, family, &inet)),
            Err(ProxyError::V2Family(family))
        );
    }
    assert_eq!(
        parse(&v2(0x21, 0x11, &inet[..11])),
        Err(ProxyError::V2Short { len: 11, need: 12 })
    );
    assert_eq!(
        parse(&v2(0x21, 0x21, &inet)),
        Err(ProxyError::V2Short { len: 12, need: 36 })
    );
    assert_eq!(
        parse(&v2(0x21, 0x31, &[0; 215])),
        Err(ProxyError::V2Short {
            len: 215,
            need: 216
        })
    );
}

#[test]
fn v2_refuses_early_on_the_fixed_part() {
    let h = v2(0x21, 0x11, &[0; V2_MAX_PAYLOAD + 1]);
    // Refused on the 16 fixed bytes: the caller never buffers the payload.
    assert_eq!(
        parse(&h[..16]),
        Err(ProxyError::V2TooLong(V2_MAX_PAYLOAD + 1))
    );
    let h = v2(0x21, 0x11, &[0; 0xFFFF]);
    assert_eq!(parse(&h[..16]), Err(ProxyError::V2TooLong(0xFFFF)));
    // Version, command and family are judged as soon as their byte is in.
    assert_eq!(
        parse(&v2(0x11, 0x11, &[])[..13]),
        Err(ProxyError::V2Version(1))
    );
    assert_eq!(
        parse(&v2(0x23, 0x11, &[])[..13]),
        Err(ProxyError::V2Command(3))
    );
    assert_eq!(
        parse(&v2(0x21, 0x44, &[])[..14]),
        Err(ProxyError::V2Family(0x44))
    );
    // Too short for the family: refused before the block arrives.
    assert_eq!(
        parse(&v2(0x21, 0x21, &[0; 12])[..16]),
        Err(ProxyError::V2Short { len: 12, need: 36 })
    );
}

#[test]
fn max_header_len_bounds_what_parse_waits_for() {
    const { assert!(V1_MAX_LEN <= MAX_HEADER_LEN) };
    assert_eq!(MAX_HEADER_LEN, 16 + 1024);
    // Any prefix of MAX_HEADER_LEN bytes is decided or refused, never
    // Incomplete: the caller can cap its buffer at MAX_HEADER_LEN.
    let mut rng = XorShift(0x5EED);
    for _ in 0..2000 {
        let mut buf = if rng.next().is_multiple_of(2) {
            V2_SIGNATURE.to_vec()
        } else {
            b"PROXY ".to_vec()
        };
        while buf.len() < MAX_HEADER_LEN {
            buf.push(rng.next() as u8);
        }
        assert_ne!(parse(&buf), Ok(Parsed::Incomplete), "{:02X?}", &buf[..20]);
    }
}

/// A tiny deterministic generator (no `rand` dependency needed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_never_panic_and_done_stays_in_bounds() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let prefixes: [&[u8]; 5] = [
        &[],
        b"PROXY ",
        b"PROXY TCP4 ",
        V2_SIGNATURE,
        b"\r\n\r\n\0\r\nQUIT\n\x21",
    ];
    // Bytes a v1 line is made of, so random lines sometimes parse.
    let alphabet = b"0123456789abcdef.: \r\nTCP46UNKOW";
    for i in 0..200_000u32 {
        let mut buf = prefixes[i as usize % prefixes.len()].to_vec();
        let n = (rng.next() % 120) as usize;
        for _ in 0..n {
            let r = rng.next();
            buf.push(if i % 3 == 0 {
                alphabet[(r as usize) % alphabet.len()]
            } else {
                r as u8
            });
        }
        if let Ok(Parsed::Done { len, .. }) = parse(&buf) {
            assert!(len <= buf.len() && len <= MAX_HEADER_LEN, "{buf:02X?}");
        }
    }
}

#[test]
fn mutating_one_byte_of_a_valid_header_never_panics() {
    for (bytes, _) in valid_cases() {
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x20, 0x80, 0xFF] {
                let mut m = bytes.clone();
                m[at] ^= flip;
                if let Ok(Parsed::Done { len, .. }) = parse(&m) {
                    assert!(len <= m.len());
                }
            }
        }
    }
}

#[test]
fn errors_name_the_fault() {
    let e = parse(&[0x10, 0x00]).unwrap_err();
    assert!(e.to_string().contains("not a PROXY protocol header"), "{e}");
    assert!(ProxyError::V1TooLong.to_string().contains("107"));
}
