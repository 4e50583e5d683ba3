//! Property tests: encode → decode → parse round trips for generated messages of both
//! directions, streams cut at arbitrary points, and arbitrary or mutated bytes that must
//! never panic, never yield a frame above the limit, and re-encode exactly when they parse.

use bytes::{BufMut, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;

/// A string the protocol can carry (no NUL), including non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,24}"
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..48)
}

/// A byte string without NUL.
fn cblob() -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 0..32)
}

fn values() -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
    vec(option::of(blob()), 0..8)
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Statement), Just(Target::Portal)]
}

fn borrowed(values: &[Option<Vec<u8>>]) -> Vec<Option<&[u8]>> {
    values.iter().map(|v| v.as_deref()).collect()
}

fn owned(values: Values<'_>) -> Vec<Option<Vec<u8>>> {
    values.iter().map(|v| v.map(<[u8]>::to_vec)).collect()
}

/// An owned model of a frontend message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum F {
    Query(String),
    Parse(String, String, Vec<u32>),
    Bind(String, String, Vec<i16>, Vec<Option<Vec<u8>>>, Vec<i16>),
    Describe(Target, String),
    Execute(String, i32),
    Close(Target, String),
    Sync,
    Flush,
    Terminate,
    CopyData(Vec<u8>),
    CopyDone,
    CopyFail(String),
    FunctionCall(u32, Vec<i16>, Vec<Option<Vec<u8>>>, i16),
    Password(Vec<u8>),
    SaslInitial(String, Option<Vec<u8>>),
    SaslResponse(Vec<u8>),
}

fn frontend_model() -> impl Strategy<Value = F> {
    prop_oneof![
        text().prop_map(F::Query),
        (text(), text(), vec(any::<u32>(), 0..6)).prop_map(|(n, s, t)| F::Parse(n, s, t)),
        (
            text(),
            text(),
            vec(any::<i16>(), 0..4),
            values(),
            vec(any::<i16>(), 0..4)
        )
            .prop_map(|(p, s, pf, v, rf)| F::Bind(p, s, pf, v, rf)),
        (target(), text()).prop_map(|(t, n)| F::Describe(t, n)),
        (text(), any::<i32>()).prop_map(|(p, n)| F::Execute(p, n)),
        (target(), text()).prop_map(|(t, n)| F::Close(t, n)),
        Just(F::Sync),
        Just(F::Flush),
        Just(F::Terminate),
        blob().prop_map(F::CopyData),
        Just(F::CopyDone),
        text().prop_map(F::CopyFail),
        (
            any::<u32>(),
            vec(any::<i16>(), 0..4),
            values(),
            any::<i16>()
        )
            .prop_map(|(o, af, a, rf)| F::FunctionCall(o, af, a, rf)),
        cblob().prop_map(F::Password),
        (text(), option::of(blob())).prop_map(|(m, d)| F::SaslInitial(m, d)),
        blob().prop_map(F::SaslResponse),
    ]
}

fn encode_frontend(m: &F, out: &mut BytesMut) -> Result<(), ProtocolError> {
    match m {
        F::Query(sql) => frontend::query(out, sql),
        F::Parse(name, sql, types) => frontend::parse(out, name, sql, types),
        F::Bind(portal, stmt, pf, params, rf) => {
            frontend::bind(out, portal, stmt, pf, &borrowed(params), rf)
        }
        F::Describe(t, name) => frontend::describe(out, *t, name),
        F::Execute(portal, n) => frontend::execute(out, portal, *n),
        F::Close(t, name) => frontend::close(out, *t, name),
        F::Sync => {
            frontend::sync(out);
            Ok(())
        }
        F::Flush => {
            frontend::flush(out);
            Ok(())
        }
        F::Terminate => {
            frontend::terminate(out);
            Ok(())
        }
        F::CopyData(d) => frontend::copy_data(out, d),
        F::CopyDone => {
            frontend::copy_done(out);
            Ok(())
        }
        F::CopyFail(msg) => frontend::copy_fail(out, msg),
        F::FunctionCall(oid, af, args, rf) => {
            frontend::function_call(out, *oid, af, &borrowed(args), *rf)
        }
        F::Password(pw) => frontend::password(out, pw),
        F::SaslInitial(mech, data) => frontend::sasl_initial_response(out, mech, data.as_deref()),
        F::SaslResponse(data) => frontend::sasl_response(out, data),
    }
}

/// Reads a parsed message back into the model; `like` says how to read a `b'p'` body.
fn frontend_back(m: &FrontendMessage<'_>, like: &F) -> Result<F, ProtocolError> {
    Ok(match *m {
        FrontendMessage::Query { sql } => F::Query(sql.into()),
        FrontendMessage::Parse {
            name,
            sql,
            param_types,
        } => F::Parse(name.into(), sql.into(), param_types.to_vec()),
        FrontendMessage::Bind(b) => F::Bind(
            b.portal.into(),
            b.statement.into(),
            b.param_formats.to_vec(),
            owned(b.params),
            b.result_formats.to_vec(),
        ),
        FrontendMessage::Describe { target, name } => F::Describe(target, name.into()),
        FrontendMessage::Execute { portal, max_rows } => F::Execute(portal.into(), max_rows),
        FrontendMessage::Close { target, name } => F::Close(target, name.into()),
        FrontendMessage::Sync => F::Sync,
        FrontendMessage::Flush => F::Flush,
        FrontendMessage::Terminate => F::Terminate,
        FrontendMessage::CopyData(d) => F::CopyData(d.to_vec()),
        FrontendMessage::CopyDone => F::CopyDone,
        FrontendMessage::CopyFail { message } => F::CopyFail(message.into()),
        FrontendMessage::FunctionCall(c) => F::FunctionCall(
            c.oid,
            c.arg_formats.to_vec(),
            owned(c.args),
            c.result_format,
        ),
        FrontendMessage::Password(p) => match like {
            F::SaslInitial(..) => {
                let (mech, data) = p.sasl_initial_response()?;
                F::SaslInitial(mech.into(), data.map(<[u8]>::to_vec))
            }
            F::SaslResponse(_) => F::SaslResponse(p.sasl_response().to_vec()),
            _ => F::Password(p.password()?.to_vec()),
        },
    })
}

/// An owned model of a backend message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum B {
    Auth(OwnedAuth),
    KeyData(i32, Vec<u8>),
    ParameterStatus(String, String),
    Ready(TransactionStatus),
    RowDescription(Vec<OwnedField>),
    DataRow(Vec<Option<Vec<u8>>>),
    CommandComplete(String),
    EmptyQuery,
    Error(ErrorBuilder),
    Notice(ErrorBuilder),
    Notification(i32, String, String),
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    PortalSuspended,
    ParameterDescription(Vec<u32>),
    CopyIn(i8, Vec<i16>),
    CopyOut(i8, Vec<i16>),
    CopyBoth(i8, Vec<i16>),
    CopyData(Vec<u8>),
    CopyDone,
    FunctionResult(Option<Vec<u8>>),
    Negotiate(i32, Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum OwnedAuth {
    Ok,
    KerberosV5,
    Cleartext,
    Md5([u8; 4]),
    Gss,
    GssContinue(Vec<u8>),
    Sspi,
    Sasl(Vec<String>),
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnedField {
    name: String,
    table_oid: u32,
    column: i16,
    type_oid: u32,
    type_size: i16,
    type_modifier: i32,
    format: i16,
}

fn auth_model() -> impl Strategy<Value = OwnedAuth> {
    prop_oneof![
        Just(OwnedAuth::Ok),
        Just(OwnedAuth::KerberosV5),
        Just(OwnedAuth::Cleartext),
        any::<[u8; 4]>().prop_map(OwnedAuth::Md5),
        Just(OwnedAuth::Gss),
        blob().prop_map(OwnedAuth::GssContinue),
        Just(OwnedAuth::Sspi),
        vec("[^\u{0}]{1,16}", 0..4).prop_map(OwnedAuth::Sasl),
        blob().prop_map(OwnedAuth::SaslContinue),
        blob().prop_map(OwnedAuth::SaslFinal),
    ]
}

fn field_model() -> impl Strategy<Value = OwnedField> {
    (
        text(),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        any::<i16>(),
    )
        .prop_map(
            |(name, table_oid, column, type_oid, type_size, type_modifier, format)| OwnedField {
                name,
                table_oid,
                column,
                type_oid,
                type_size,
                type_modifier,
                format,
            },
        )
}

fn severity() -> impl Strategy<Value = Severity> {
    select(vec![
        Severity::Error,
        Severity::Fatal,
        Severity::Panic,
        Severity::Warning,
        Severity::Notice,
        Severity::Debug,
        Severity::Info,
        Severity::Log,
    ])
}

/// Builders that survive encode → parse → [`ErrorBuilder::from_fields`] unchanged.
fn error_model() -> impl Strategy<Value = ErrorBuilder> {
    (
        severity(),
        "[0-9A-Z]{5}",
        text(),
        option::of(text()),
        option::of(text()),
        option::of(any::<u32>()),
        vec((select(b"WqpstcdnFLR".to_vec()), text()), 0..4),
    )
        .prop_map(|(severity, code, message, detail, hint, position, other)| {
            let mut b = ErrorBuilder::new(severity, code, message);
            b.detail = detail;
            b.hint = hint;
            b.position = position;
            b.other = other;
            b
        })
}

fn backend_model() -> impl Strategy<Value = B> {
    prop_oneof![
        auth_model().prop_map(B::Auth),
        (any::<i32>(), vec(any::<u8>(), 4..=256)).prop_map(|(p, k)| B::KeyData(p, k)),
        (text(), text()).prop_map(|(n, v)| B::ParameterStatus(n, v)),
        select(vec![
            TransactionStatus::Idle,
            TransactionStatus::InBlock,
            TransactionStatus::Failed
        ])
        .prop_map(B::Ready),
        vec(field_model(), 0..5).prop_map(B::RowDescription),
        values().prop_map(B::DataRow),
        text().prop_map(B::CommandComplete),
        Just(B::EmptyQuery),
        error_model().prop_map(B::Error),
        error_model().prop_map(B::Notice),
        (any::<i32>(), text(), text()).prop_map(|(p, c, m)| B::Notification(p, c, m)),
        Just(B::ParseComplete),
        Just(B::BindComplete),
        Just(B::CloseComplete),
        Just(B::NoData),
        Just(B::PortalSuspended),
        vec(any::<u32>(), 0..6).prop_map(B::ParameterDescription),
        (any::<i8>(), vec(any::<i16>(), 0..4)).prop_map(|(f, c)| B::CopyIn(f, c)),
        (any::<i8>(), vec(any::<i16>(), 0..4)).prop_map(|(f, c)| B::CopyOut(f, c)),
        (any::<i8>(), vec(any::<i16>(), 0..4)).prop_map(|(f, c)| B::CopyBoth(f, c)),
        blob().prop_map(B::CopyData),
        Just(B::CopyDone),
        option::of(blob()).prop_map(B::FunctionResult),
        (any::<i32>(), vec(text(), 0..4)).prop_map(|(m, u)| B::Negotiate(m, u)),
    ]
}

fn encode_backend(m: &B, out: &mut BytesMut) -> Result<(), ProtocolError> {
    match m {
        B::Auth(a) => {
            let mechanisms: Vec<&str>;
            let auth = match a {
                OwnedAuth::Ok => Auth::Ok,
                OwnedAuth::KerberosV5 => Auth::KerberosV5,
                OwnedAuth::Cleartext => Auth::CleartextPassword,
                OwnedAuth::Md5(salt) => Auth::Md5Password { salt: *salt },
                OwnedAuth::Gss => Auth::Gss,
                OwnedAuth::GssContinue(d) => Auth::GssContinue(d),
                OwnedAuth::Sspi => Auth::Sspi,
                OwnedAuth::Sasl(m) => {
                    mechanisms = m.iter().map(String::as_str).collect();
                    Auth::Sasl { mechanisms }
                }
                OwnedAuth::SaslContinue(d) => Auth::SaslContinue(d),
                OwnedAuth::SaslFinal(d) => Auth::SaslFinal(d),
            };
            backend::authentication(out, &auth)
        }
        B::KeyData(pid, key) => backend::backend_key_data(out, *pid, key),
        B::ParameterStatus(n, v) => backend::parameter_status(out, n, v),
        B::Ready(s) => {
            backend::ready_for_query(out, *s);
            Ok(())
        }
        B::RowDescription(fields) => {
            let fields: Vec<FieldDescription<'_>> = fields
                .iter()
                .map(|f| FieldDescription {
                    name: &f.name,
                    table_oid: f.table_oid,
                    column: f.column,
                    type_oid: f.type_oid,
                    type_size: f.type_size,
                    type_modifier: f.type_modifier,
                    format: f.format,
                })
                .collect();
            backend::row_description(out, &fields)
        }
        B::DataRow(v) => backend::data_row(out, &borrowed(v)),
        B::CommandComplete(t) => backend::command_complete(out, t),
        B::EmptyQuery => {
            backend::empty_query_response(out);
            Ok(())
        }
        B::Error(e) => {
            backend::error_response(out, e);
            Ok(())
        }
        B::Notice(e) => {
            backend::notice_response(out, e);
            Ok(())
        }
        B::Notification(pid, c, p) => backend::notification_response(out, *pid, c, p),
        B::ParseComplete => {
            backend::parse_complete(out);
            Ok(())
        }
        B::BindComplete => {
            backend::bind_complete(out);
            Ok(())
        }
        B::CloseComplete => {
            backend::close_complete(out);
            Ok(())
        }
        B::NoData => {
            backend::no_data(out);
            Ok(())
        }
        B::PortalSuspended => {
            backend::portal_suspended(out);
            Ok(())
        }
        B::ParameterDescription(t) => backend::parameter_description(out, t),
        B::CopyIn(f, c) => backend::copy_in_response(out, *f, c),
        B::CopyOut(f, c) => backend::copy_out_response(out, *f, c),
        B::CopyBoth(f, c) => backend::copy_both_response(out, *f, c),
        B::CopyData(d) => backend::copy_data(out, d),
        B::CopyDone => {
            backend::copy_done(out);
            Ok(())
        }
        B::FunctionResult(v) => backend::function_call_response(out, v.as_deref()),
        B::Negotiate(minor, names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            backend::negotiate_protocol_version(out, *minor, &names)
        }
    }
}

fn backend_back(m: &BackendMessage<'_>) -> B {
    match m {
        BackendMessage::Authentication(a) => B::Auth(match a {
            Auth::Ok => OwnedAuth::Ok,
            Auth::KerberosV5 => OwnedAuth::KerberosV5,
            Auth::CleartextPassword => OwnedAuth::Cleartext,
            Auth::Md5Password { salt } => OwnedAuth::Md5(*salt),
            Auth::Gss => OwnedAuth::Gss,
            Auth::GssContinue(d) => OwnedAuth::GssContinue(d.to_vec()),
            Auth::Sspi => OwnedAuth::Sspi,
            Auth::Sasl { mechanisms } => {
                OwnedAuth::Sasl(mechanisms.iter().map(|m| (*m).to_owned()).collect())
            }
            Auth::SaslContinue(d) => OwnedAuth::SaslContinue(d.to_vec()),
            Auth::SaslFinal(d) => OwnedAuth::SaslFinal(d.to_vec()),
        }),
        BackendMessage::BackendKeyData { pid, key } => B::KeyData(*pid, key.to_vec()),
        BackendMessage::ParameterStatus { name, value } => {
            B::ParameterStatus((*name).into(), (*value).into())
        }
        BackendMessage::ReadyForQuery { status } => B::Ready(*status),
        BackendMessage::RowDescription(rd) => B::RowDescription(
            rd.fields()
                .map(|f| OwnedField {
                    name: f.name.into(),
                    table_oid: f.table_oid,
                    column: f.column,
                    type_oid: f.type_oid,
                    type_size: f.type_size,
                    type_modifier: f.type_modifier,
                    format: f.format,
                })
                .collect(),
        ),
        BackendMessage::DataRow(row) => B::DataRow(owned(row.as_values())),
        BackendMessage::CommandComplete { tag } => B::CommandComplete((*tag).into()),
        BackendMessage::EmptyQueryResponse => B::EmptyQuery,
        BackendMessage::ErrorResponse(f) => B::Error(ErrorBuilder::from_fields(f)),
        BackendMessage::NoticeResponse(f) => B::Notice(ErrorBuilder::from_fields(f)),
        BackendMessage::NotificationResponse {
            pid,
            channel,
            payload,
        } => B::Notification(*pid, (*channel).into(), (*payload).into()),
        BackendMessage::ParseComplete => B::ParseComplete,
        BackendMessage::BindComplete => B::BindComplete,
        BackendMessage::CloseComplete => B::CloseComplete,
        BackendMessage::NoData => B::NoData,
        BackendMessage::PortalSuspended => B::PortalSuspended,
        BackendMessage::ParameterDescription(o) => B::ParameterDescription(o.to_vec()),
        BackendMessage::CopyInResponse(c) => B::CopyIn(c.format, c.column_formats.to_vec()),
        BackendMessage::CopyOutResponse(c) => B::CopyOut(c.format, c.column_formats.to_vec()),
        BackendMessage::CopyBothResponse(c) => B::CopyBoth(c.format, c.column_formats.to_vec()),
        BackendMessage::CopyData(d) => B::CopyData(d.to_vec()),
        BackendMessage::CopyDone => B::CopyDone,
        BackendMessage::FunctionCallResponse(v) => B::FunctionResult(v.map(<[u8]>::to_vec)),
        BackendMessage::NegotiateProtocolVersion {
            newest_minor,
            unrecognized,
        } => B::Negotiate(
            *newest_minor,
            unrecognized.iter().map(|u| (*u).to_owned()).collect(),
        ),
    }
}

fn startup_model() -> impl Strategy<Value = Startup> {
    prop_oneof![
        Just(Startup::Ssl),
        Just(Startup::GssEnc),
        (any::<i32>(), vec(any::<u8>(), 4..=256)).prop_map(|(pid, key)| Startup::Cancel {
            pid,
            key: key.into()
        }),
        (any::<u16>(), vec(("[^\u{0}]{1,12}", text()), 0..6)).prop_map(|(minor, params)| {
            Startup::Startup {
                version: PROTOCOL_3_0 | u32::from(minor),
                params,
            }
        }),
    ]
}

/// Feeds `wire` to `decode` in pieces cut at `cuts`, collecting every frame.
fn decode_in_pieces<T>(
    wire: &[u8],
    cuts: &[usize],
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, ProtocolError>,
) -> Vec<T> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for cut in cuts {
        buf.put_slice(wire.get(fed..cut).expect("in range"));
        fed = cut;
        while let Some(frame) = decode(&mut buf).expect("valid stream") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "everything was decoded");
    frames
}

/// Decodes everything in `bytes` that decodes, checking the limit and re-encoding.
fn drain_frontend(bytes: &[u8], limits: &Limits) {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(frame)) = decode_frontend(&mut buf, limits) {
        assert!(
            frame.len() - 1 <= limits.max_message,
            "frame above the limit"
        );
        check_frontend_frame(&frame);
    }
}

fn drain_backend(bytes: &[u8], limits: &Limits) {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(frame)) = decode_backend(&mut buf, limits) {
        assert!(
            frame.len() - 1 <= limits.max_message,
            "frame above the limit"
        );
        check_backend_frame(&frame);
    }
}

/// A frame that parses re-encodes to its exact bytes; every reading of it is safe.
fn check_frontend_frame(frame: &FrontendFrame) {
    if let Ok(m) = frame.parse() {
        let mut out = BytesMut::new();
        m.encode(&mut out).expect("a parsed message encodes");
        assert_eq!(out.as_ref(), frame.raw().as_ref());
        if let FrontendMessage::Password(p) = m {
            let _ = (p.password(), p.password_str(), p.sasl_initial_response());
        }
        if let FrontendMessage::Bind(b) = m {
            assert_eq!(b.params.iter().count(), b.params.len());
            for span in b.params.spans().flatten() {
                assert!(frame.body().get(span).is_some());
            }
        }
    }
}

fn check_backend_frame(frame: &BackendFrame) {
    if let Ok(m) = frame.parse() {
        let mut out = BytesMut::new();
        m.encode(&mut out).expect("a parsed message encodes");
        assert_eq!(out.as_ref(), frame.raw().as_ref());
        match m {
            BackendMessage::DataRow(row) => {
                assert_eq!(row.values().count(), row.len());
                for (span, value) in row.spans().zip(row.values()) {
                    assert_eq!(span.map(|s| frame.body().get(s)), value.map(Some));
                }
            }
            BackendMessage::RowDescription(rd) => assert_eq!(rd.fields().count(), rd.len()),
            BackendMessage::ErrorResponse(f) | BackendMessage::NoticeResponse(f) => {
                let _ = f.iter().count();
                let mut out = BytesMut::new();
                ErrorBuilder::from_fields(&f).encode(&mut out);
                let again = decode_backend(&mut out, &Limits::DEFAULT)
                    .expect("valid")
                    .expect("complete");
                assert!(again.parse().is_ok());
            }
            _ => {}
        }
    }
}

const FRONT_TAGS: &[u8] = b"QPBDECSHXdcfFp";
const BACK_TAGS: &[u8] = b"RKSZTDCIENA123nstGHWdcVv";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn frontend_round_trip(m in frontend_model()) {
        let mut wire = BytesMut::new();
        encode_frontend(&m, &mut wire).expect("encodable");
        let bytes = wire.clone();
        let frame = decode_frontend(&mut wire, &Limits::DEFAULT)
            .expect("valid")
            .expect("complete");
        prop_assert!(wire.is_empty());
        prop_assert_eq!(frame.raw().as_ref(), bytes.as_ref());
        let parsed = frame.parse().expect("parses");
        prop_assert_eq!(frontend_back(&parsed, &m).expect("reads back"), m);
        let mut again = BytesMut::new();
        parsed.encode(&mut again).expect("re-encodes");
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn backend_round_trip(m in backend_model()) {
        let mut wire = BytesMut::new();
        encode_backend(&m, &mut wire).expect("encodable");
        let bytes = wire.clone();
        let frame = decode_backend(&mut wire, &Limits::DEFAULT)
            .expect("valid")
            .expect("complete");
        prop_assert!(wire.is_empty());
        prop_assert_eq!(frame.raw().as_ref(), bytes.as_ref());
        let parsed = frame.parse().expect("parses");
        prop_assert_eq!(backend_back(&parsed), m);
        let mut again = BytesMut::new();
        parsed.encode(&mut again).expect("re-encodes");
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn startup_round_trip(s in startup_model(), cuts in vec(any::<usize>(), 0..4)) {
        let mut wire = BytesMut::new();
        s.encode(&mut wire).expect("encodable");
        let decoded = decode_in_pieces(&wire, &cuts, |buf| decode_startup(buf, &Limits::DEFAULT));
        prop_assert_eq!(decoded, vec![s]);
    }

    #[test]
    fn frontend_streams(ms in vec(frontend_model(), 0..12), cuts in vec(any::<usize>(), 0..12)) {
        let mut wire = BytesMut::new();
        for m in &ms {
            encode_frontend(m, &mut wire).expect("encodable");
        }
        let frames = decode_in_pieces(&wire, &cuts, |buf| decode_frontend(buf, &Limits::DEFAULT));
        prop_assert_eq!(frames.len(), ms.len());
        let mut rejoined = BytesMut::new();
        for (frame, m) in frames.iter().zip(&ms) {
            frame.encode_into(&mut rejoined);
            let parsed = frame.parse().expect("parses");
            prop_assert_eq!(&frontend_back(&parsed, m).expect("reads back"), m);
        }
        prop_assert_eq!(rejoined, wire);
    }

    #[test]
    fn backend_streams(ms in vec(backend_model(), 0..12), cuts in vec(any::<usize>(), 0..12)) {
        let mut wire = BytesMut::new();
        for m in &ms {
            encode_backend(m, &mut wire).expect("encodable");
        }
        let frames = decode_in_pieces(&wire, &cuts, |buf| decode_backend(buf, &Limits::DEFAULT));
        prop_assert_eq!(frames.len(), ms.len());
        let mut rejoined = BytesMut::new();
        for (frame, m) in frames.iter().zip(&ms) {
            frame.encode_into(&mut rejoined);
            prop_assert_eq!(&backend_back(&frame.parse().expect("parses")), m);
        }
        prop_assert_eq!(rejoined, wire);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), max in 0usize..600) {
        let limits = Limits { max_message: max, max_startup: max };
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(s)) = decode_startup(&mut buf, &limits) {
            let mut out = BytesMut::new();
            s.encode(&mut out).expect("a decoded packet encodes");
            prop_assert!(out.len() <= max);
            prop_assert_eq!(out.as_ref(), bytes.get(..out.len()).expect("a prefix"));
        }
        drain_frontend(&bytes, &limits);
        drain_backend(&bytes, &limits);
    }

    /// Arbitrary bodies behind every valid tag reach deep into the parsers.
    #[test]
    fn arbitrary_bodies_never_panic(
        front_tag in select(FRONT_TAGS.to_vec()),
        back_tag in select(BACK_TAGS.to_vec()),
        body in vec(any::<u8>(), 0..96),
    ) {
        let frame = FrontendFrame::new(front_tag, &body).expect("a frame");
        check_frontend_frame(&frame);
        let frame = BackendFrame::new(back_tag, &body).expect("a frame");
        check_backend_frame(&frame);
    }

    /// Valid messages with one byte changed, or cut short, or extended.
    #[test]
    fn mutated_messages_never_panic(
        f in frontend_model(),
        b in backend_model(),
        at in any::<usize>(),
        byte in any::<u8>(),
        how in 0u8..3,
    ) {
        let mutate = |body: &[u8]| -> Vec<u8> {
            let mut body = body.to_vec();
            let i = at % (body.len() + 1);
            match how {
                0 => if let Some(x) = body.get_mut(i) { *x = byte },
                1 => body.truncate(i),
                _ => body.insert(i, byte),
            }
            body
        };
        let mut wire = BytesMut::new();
        encode_frontend(&f, &mut wire).expect("encodable");
        let frame = decode_frontend(&mut wire, &Limits::DEFAULT).expect("valid").expect("complete");
        let mutated = FrontendFrame::new(frame.tag(), &mutate(frame.body())).expect("a frame");
        check_frontend_frame(&mutated);

        let mut wire = BytesMut::new();
        encode_backend(&b, &mut wire).expect("encodable");
        let frame = decode_backend(&mut wire, &Limits::DEFAULT).expect("valid").expect("complete");
        let mutated = BackendFrame::new(frame.tag(), &mutate(frame.body())).expect("a frame");
        check_backend_frame(&mutated);
    }

    /// Mutated startup packets (the length field kept consistent).
    #[test]
    fn mutated_startup_never_panics(s in startup_model(), at in any::<usize>(), byte in any::<u8>()) {
        let mut wire = BytesMut::new();
        s.encode(&mut wire).expect("encodable");
        let mut bytes = wire.to_vec();
        let i = 4 + at % (bytes.len() - 3);
        if let Some(x) = bytes.get_mut(i) { *x = byte }
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(s)) = decode_startup(&mut buf, &Limits::DEFAULT) {
            let mut out = BytesMut::new();
            s.encode(&mut out).expect("a decoded packet encodes");
            prop_assert_eq!(out.as_ref(), &bytes[..]);
        }
    }

    /// Encoders never panic and either write one decodable message or nothing.
    #[test]
    fn encoders_write_all_or_nothing(
        a in "[\u{0}a-z]{0,6}",
        b in "[\u{0}a-z]{0,6}",
        n in 0usize..3,
    ) {
        let params = vec![Some(a.as_bytes()); n];
        let types = vec![0; n];
        let pairs = [(a.as_str(), b.as_str())];
        let cases: Vec<(Dir, Encoder<'_>)> = vec![
            (Dir::Front, Box::new(|o| frontend::query(o, &a))),
            (Dir::Front, Box::new(|o| frontend::parse(o, &a, &b, &types))),
            (Dir::Front, Box::new(|o| frontend::bind(o, &a, &b, &[], &params, &[]))),
            (Dir::Front, Box::new(|o| frontend::password(o, a.as_bytes()))),
            (Dir::Front, Box::new(|o| frontend::describe(o, Target::Portal, &b))),
            (Dir::Back, Box::new(|o| backend::parameter_status(o, &a, &b))),
            (Dir::Back, Box::new(|o| backend::command_complete(o, &a))),
            (Dir::Back, Box::new(|o| backend::notification_response(o, 1, &a, &b))),
            (Dir::Startup, Box::new(|o| frontend::startup(o, &pairs))),
        ];
        let has_nul = a.contains('\0') || b.contains('\0');
        for (dir, encode) in &cases {
            let mut out = BytesMut::from(&b"prefix"[..]);
            let result = encode(&mut out);
            let mut written = out.split_off(6);
            prop_assert_eq!(out.as_ref(), b"prefix");
            match result {
                Err(_) => prop_assert!(written.is_empty()),
                Ok(()) => {
                    let decoded = match dir {
                        Dir::Front => decode_frontend(&mut written, &Limits::DEFAULT)
                            .map(|f| f.is_some()),
                        Dir::Back => decode_backend(&mut written, &Limits::DEFAULT)
                            .map(|f| f.is_some()),
                        Dir::Startup => decode_startup(&mut written, &Limits::DEFAULT)
                            .map(|s| s.is_some()),
                    };
                    prop_assert_eq!(decoded, Ok(true));
                    prop_assert!(written.is_empty());
                }
            }
        }
        if has_nul {
            prop_assert!(frontend::parse(&mut BytesMut::new(), &a, &b, &[]).is_err());
        }
    }
}

/// Which decoder reads an encoder's output.
enum Dir {
    Front,
    Back,
    Startup,
}

type Encoder<'a> = Box<dyn Fn(&mut BytesMut) -> Result<(), ProtocolError> + 'a>;
