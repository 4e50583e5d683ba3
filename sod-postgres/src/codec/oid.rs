//! Object identifiers the gateway needs to know by number: the built-in types whose binary
//! values it reads (or knows it cannot hold what masking detectors look for), and where
//! PostgreSQL's own objects end. Values from `src/include/catalog/pg_type.dat` and
//! `transam.h`; they are fixed across server versions.

/// OIDs below this are PostgreSQL's own objects (`FirstNormalObjectId`): a type, function or
/// relation at or above it was created by a user.
pub const FIRST_NORMAL_OBJECT_ID: u32 = 16_384;

/// `bool`.
pub const BOOL: u32 = 16;
/// `name`.
pub const NAME: u32 = 19;
/// `int8`.
pub const INT8: u32 = 20;
/// `int2`.
pub const INT2: u32 = 21;
/// `int4`.
pub const INT4: u32 = 23;
/// `text`.
pub const TEXT: u32 = 25;
/// `oid`.
pub const OID: u32 = 26;
/// `json`.
pub const JSON: u32 = 114;
/// `xml`.
pub const XML: u32 = 142;
/// `float4`.
pub const FLOAT4: u32 = 700;
/// `float8`.
pub const FLOAT8: u32 = 701;
/// `unknown` (an untyped literal).
pub const UNKNOWN: u32 = 705;
/// `bpchar` (`char(n)`).
pub const BPCHAR: u32 = 1042;
/// `varchar`.
pub const VARCHAR: u32 = 1043;
/// `date`.
pub const DATE: u32 = 1082;
/// `time`.
pub const TIME: u32 = 1083;
/// `timestamp`.
pub const TIMESTAMP: u32 = 1114;
/// `timestamptz`.
pub const TIMESTAMPTZ: u32 = 1184;
/// `interval`.
pub const INTERVAL: u32 = 1186;
/// `uuid`.
pub const UUID: u32 = 2950;

/// Types whose binary format is the text itself (UTF-8, as the session's encoding is).
pub const TEXT_LIKE: &[u32] = &[TEXT, VARCHAR, BPCHAR, NAME, JSON, XML, UNKNOWN];

/// Types whose values cannot hold what masking's detectors look for (an e-mail, a card number,
/// a key): booleans, floats, dates and times, UUIDs.
pub const CANNOT_HOLD_TEXT: &[u32] = &[
    BOOL,
    FLOAT4,
    FLOAT8,
    DATE,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    INTERVAL,
    UUID,
];
