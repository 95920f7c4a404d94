//! Expected texts are what Prometheus 2.42 (`promtool test rules`) printed
//! for the same template, labels and value.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

fn alert() -> AlertData {
    AlertData {
        labels: labels(&[
            ("__name__", "probe"),
            ("instance", "host.example.com:9100"),
            ("job", "node"),
        ]),
        external_labels: labels(&[("cluster", "prod"), ("region", "eu")]),
        external_url: "http://prom.example.com:9090/prefix".into(),
        value: 1234567.891,
    }
}

/// `up` of three targets, answering `up`, `up{job='…'}` and nothing else.
fn query_up(query: &str, _timestamp_ms: i64) -> Result<Vec<QuerySample>, String> {
    let targets = [
        ("a:9100", "node", 1.0),
        ("b:80", "api", 0.0),
        ("c:5432", "db", 1.0),
    ];
    let job = match query {
        "up" => None,
        _ => match query
            .strip_prefix("up{job='")
            .and_then(|q| q.strip_suffix("'}"))
        {
            Some(job) => Some(job),
            None => return Ok(Vec::new()),
        },
    };
    Ok(targets
        .iter()
        .filter(|(_, j, _)| job.is_none_or(|want| want == *j))
        .map(|(instance, j, value)| QuerySample {
            labels: labels(&[("__name__", "up"), ("instance", instance), ("job", j)]),
            value: *value,
        })
        .collect())
}

fn expand(template: &str) -> String {
    expand_alert("T", template, &alert(), 0, &query_up)
}

fn assert_expansions(cases: &[(&str, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(template, expected)| {
            let got = expand(template);
            (got != *expected).then(|| format!("{template:?}\n  want {expected:?}\n  got  {got:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn assert_check_errors(cases: &[(&str, &str)]) {
    for (template, expected) in cases {
        assert_eq!(
            check("T", template),
            Err(expected.to_string()),
            "{template:?}"
        );
        let expanded = expand(template);
        assert_eq!(
            expanded,
            format!("<error expanding template: error parsing template __alert_T: {expected}>")
        );
    }
}

#[test]
fn values_and_variables() {
    assert_expansions(&[
        ("{{ $value }}", "1.234567891e+06"),
        ("{{ .Value }}|{{ $labels }}|{{ $externalLabels }}|{{ $externalURL }}", "1.234567891e+06|map[__name__:probe instance:host.example.com:9100 job:node]|map[cluster:prod region:eu]|http://prom.example.com:9090/prefix"),
        ("[{{ $labels.missing }}][{{ index $labels \"missing\" }}][{{ .Labels.job }}]", "[][][node]"),
        ("{{ . }}", "{map[__name__:probe instance:host.example.com:9100 job:node] map[cluster:prod region:eu] http://prom.example.com:9090/prefix 1.234567891e+06}"),
        ("{{ (args 1 \"a\").arg5 }} {{ args 1 \"a\" 2.5 true }}", "<no value> map[arg0:1 arg1:a arg2:2.5 arg3:true]"),
        ("{{ 1.0 }} {{ 1e21 }} {{ 100000000.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 123456.7 }} {{ 0755 }} {{ 1_000 }} {{ 0x1F }} {{ 'a' }} {{ true }} {{ \"s\" }} {{ `raw\\n` }}", "1 1e+21 1e+08 0.0001 1e-05 -0 123456.7 493 1000 31 97 true s raw\\n"),
        ("{{ \"quoted \\\"x\\\"\\t\\u00e9\" }}", "quoted \"x\"\té"),
    ]);
}

#[test]
fn control_structures() {
    assert_expansions(&[
        ("{{ if gt $value 1000.0 }}high{{ else if gt $value 10.0 }}mid{{ else }}low{{ end }}", "high"),
        ("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", "__name__=probe;instance=host.example.com:9100;job=node;"),
        ("{{ range $labels }}[{{ . }}]{{ else }}none{{ end }}", "[probe][host.example.com:9100][node]"),
        ("{{ range $i, $e := sortByLabel \"job\" (query \"up\") }}{{ $i }}:{{ $e.Labels.job }} {{ end }}", "0:api 1:db 2:node "),
        ("{{ range sortByLabel \"job\" (query \"up\") }}{{ if eq .Labels.job \"api\" }}{{ continue }}{{ end }}{{ .Labels.job }}{{ if eq .Labels.job \"db\" }}{{ break }}{{ end }},{{ end }}", "db"),
        ("{{ range query \"nothing_here\" }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ with $labels.job }}job {{ . }}{{ end }} {{ with $labels.nope }}x{{ else }}no nope{{ end }}", "job node no nope"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}x={{ $x }}", "x=2"),
        ("a  {{- \" b \" -}}  c {{/* a comment */}} d", "a b c  d"),
        ("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" $labels.job }}{{ block \"b\" 5 }}<{{ . }}>{{ end }}", "[node]<5>"),
        ("{{ template \"x\" }}{{ define \"x\" }}[{{ .Value }}]{{ end }}", "[<no value>]"),
    ]);
}

#[test]
fn comparisons_logic_and_collections() {
    assert_expansions(&[
        ("{{ eq 1 1 }} {{ eq \"a\" \"b\" \"a\" }} {{ ne 1 2 }} {{ le 2 2 }} {{ ge 1.5 2.5 }} {{ lt \"a\" \"b\" }} {{ gt 2 1 }}", "true true true true false true true"),
        ("{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ not 0 }} {{ and 1 2 }} {{ or 0 false }}", "0 x true 2 false"),
        ("{{ len $labels }} {{ len \"héllo\" }} {{ len (query \"up\") }} {{ index \"abc\" 1 }} {{ slice \"hello\" 1 3 }} {{ slice \"hello\" 2 }}", "3 6 3 98 el llo"),
        ("{{ eq $value 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <eq $value 1>: error calling eq: incompatible types for comparison>"),
        ("{{ lt true false }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <lt true false>: error calling lt: invalid type for comparison>"),
        ("{{ eq 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <eq 1>: error calling eq: missing argument for comparison>"),
        ("{{ len 3 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <len 3>: error calling len: len of type int>"),
        ("{{ index $labels 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <index $labels 1>: error calling index: value has type int; should be string>"),
        ("{{ index (query \"nothing_here\") 0 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <index (query \"nothing_here\") 0>: error calling index: reflect: slice index out of range>"),
        ("{{ slice \"hello\" 3 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <slice \"hello\" 3 1>: error calling slice: invalid slice index: 3 > 1>"),
    ]);
}

#[test]
fn printf_and_printing() {
    assert_expansions(&[
        ("{{ printf \"%.2f\" $value }} {{ printf \"%d\" 42 }} {{ printf \"%5.1f|%-6s|%06.2f\" 3.14159 \"ab\" -2.5 }}", "1234567.89 42   3.1|ab    |-02.50"),
        ("{{ printf \"%v %d %s %q %x %e %g %f %t %%\" 1.5 42 \"s\" \"q\" 255 1234.5 0.000012 3.14159 true }}", "1.5 42 s \"q\" ff 1.234500e+03 1.2e-05 3.141590 true %"),
        ("{{ printf \"%+d|% d|%X|%#x|%o|%b|%c|%q|%U|%08.3d|%.0d|\" 5 5 255 255 8 5 65 65 65 7 0 }}", "+5| 5|FF|0xff|10|101|A|'A'|U+0041|     007||"),
        ("{{ printf \"%+.2f|%08.2f|%E|%.0e|%G|%.3g|%10.3g|%g|%g\" 3.14159 -3.14159 0.000123 5.5 1e-7 1234.5678 0.00001234 100000.0 1000000.0 }}", "+3.14|-0003.14|1.230000E-04|6e+00|1E-07|1.23e+03|  1.23e-05|100000|1e+06"),
        ("{{ printf \"%d|%s\" 1.5 1 }} {{ printf \"%d %d\" 1 }} {{ printf \"%d\" 1 2 }} {{ printf \"%z\" 1 }} {{ printf \"%d\" nil }} {{ printf \"%\" }}", "%!d(float64=1.5)|%!s(int=1) 1 %!d(MISSING) 1%!(EXTRA int=2) %!z(int=1) %!d(<nil>) %!(NOVERB)"),
        ("{{ printf \"%T %T %T %T\" 1 1.5 \"s\" $labels }} {{ printf \"%*d|\" 5 3 }} {{ printf \"%.3s|%5s|%x\" \"héllo\" \"é\" \"hi\" }}", "int float64 string map[string]string     3| hél|    é|6869"),
        ("{{ printf \"%x|%X|%.2x\" 1.5 255.0 \"hello\" }}", "0x1.8p+00|0X1.FEP+07|6865"),
        ("{{ print 1 2 \"a\" \"b\" 3 true nil 1.5 }} {{ println 1 \"x\" }}", "1 2ab3 true <nil> 1.5 1 x\n"),
        ("{{ html \"a<b>&'\\\"\" }} {{ js \"a<b>&='\\\"\\\\ é \\u0001\" }} {{ urlquery \"a b&c/é\" }}", "a&lt;b&gt;&amp;&#39;&#34; a\\u003Cb\\u003E\\u0026\\u003D\\'\\\"\\\\ é \\u0001 a+b%26c%2F%C3%A9"),
        ("{{ printf \"%v\" (first (query \"up{job='db'}\")) }}", "&{map[__name__:up instance:c:5432 job:db] 1}"),
    ]);
}

#[test]
fn humanize_functions() {
    assert_expansions(&[
        ("{{ humanize $value }} {{ humanize1024 $value }} {{ humanizePercentage $value }} {{ humanizeDuration $value }}", "1.235M 1.177Mi 1.235e+08% 14d 6h 56m 7s"),
        ("{{ humanize 0 }} {{ humanize -1234.5 }} {{ humanize 1e-9 }} {{ humanize \"NaN\" }} {{ humanize \"-Inf\" }} {{ humanize 1e30 }} {{ humanize 1e-30 }} {{ humanize 999.95 }}", "0 -1.234k 1n NaN -Inf 1e+06Y 1e-06y 1000"),
        ("{{ humanize1024 1 }} {{ humanize1024 -1025 }} {{ humanize1024 1e30 }} {{ humanize1024 \"2048\" }} {{ humanize1024 0.5 }}", "1 -1.001ki 8.272e+05Yi 2ki 0.5"),
        ("{{ humanizeDuration 93784.5 }} {{ humanizeDuration 59.99 }} {{ humanizeDuration -3601 }} {{ humanizeDuration 0.0012345 }} {{ humanizeDuration 0 }} {{ humanizeDuration 1e20 }}", "1d 2h 3m 4s 59.99s -1h 0m 1s 1.234ms 0s -106751991167300d -15h -30m -8s"),
        ("{{ humanizePercentage 0.8765 }} {{ humanizePercentage -0.5 }} {{ humanizePercentage \"0.1\" }}", "87.65% -50% 10%"),
        ("{{ humanize \"1234.5\" }} {{ humanize \"1_000\" }} {{ humanize \"inf\" }}", "1.234k 1k +Inf"),
        ("{{ humanize \"abc\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize \"abc\">: error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax>"),
        ("{{ humanize true }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize true>: error calling humanize: can't convert bool to float>"),
        ("{{ humanize nil }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize nil>: error calling humanize: can't convert <nil> to float>"),
        ("{{ humanize \"1e400\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize \"1e400\">: error calling humanize: strconv.ParseFloat: parsing \"1e400\": value out of range>"),
        ("{{ humanize (safeHtml \"1\") }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize (safeHtml \"1\")>: error calling humanize: can't convert template.HTML to float>"),
    ]);
}

#[test]
fn time_functions() {
    assert_expansions(&[
        ("{{ humanizeTimestamp 1679000000.123 }} {{ humanizeTimestamp -1.5 }} {{ humanizeTimestamp 0 }} {{ humanizeTimestamp \"NaN\" }}", "2023-03-16 20:53:20.122 +0000 UTC 1969-12-31 23:59:58.5 +0000 UTC 1970-01-01 00:00:00 +0000 UTC NaN"),
        ("{{ toTime 1.5 }} {{ (toTime 1679000000).Unix }} {{ toTime \"1679000000\" }}", "1970-01-01 00:00:01.5 +0000 UTC 1679000000 2023-03-16 20:53:20 +0000 UTC"),
        ("{{ humanizeTimestamp 1e20 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanizeTimestamp 1e20>: error calling humanizeTimestamp: 1e+20 cannot be represented as a nanoseconds timestamp since it overflows int64>"),
        ("{{ toTime \"NaN\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <toTime \"NaN\">: error calling toTime: value is NaN or Inf>"),
        ("{{ parseDuration \"1h30m\" }} {{ parseDuration \"0\" }} {{ parseDuration \"1y1w1d1h1m1s1ms\" }} {{ parseDuration \"90s\" }}", "5400 0 3.2230861001e+07 90"),
        ("{{ parseDuration \"1.5h\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <parseDuration \"1.5h\">: error calling parseDuration: not a valid duration string: \"1.5h\">"),
        ("{{ parseDuration \"\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <parseDuration \"\">: error calling parseDuration: empty duration string>"),
        ("{{ parseDuration \"300000y\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <parseDuration \"300000y\">: error calling parseDuration: duration out of range>"),
    ]);
}

#[test]
fn string_and_regexp_functions() {
    assert_expansions(&[
        ("{{ title \"hello wORLD foo-bar x_y 1a\" }} {{ toUpper \"straße\" }} {{ toLower \"ÀB\" }} {{ title \"ǆemal\" }}", "Hello WORLD Foo-Bar X_y 1a STRAßE àb ǅemal"),
        ("{{ match \"^a\" \"abc\" }} {{ match \"\\\\d\" \"٣\" }} {{ match \"(?i)NODE\" $labels.job }}", "true false true"),
        ("{{ reReplaceAll \"(\\\\w+)@(\\\\w+)\" \"$2.$1x${1}y$$\" \"joe@host bob@srv\" }} {{ reReplaceAll \"a*\" \"-\" \"baaac\" }}", "host.joey$ srv.boby$ -b-c-"),
        ("{{ reReplaceAll \"(\" \"x\" \"y\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <reReplaceAll \"(\" \"x\" \"y\">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`>"),
        ("{{ match \"(\" \"y\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <match \"(\" \"y\">: error calling match: error parsing regexp: missing closing ): `(`>"),
        ("{{ match \"[a\" \"y\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <match \"[a\" \"y\">: error calling match: error parsing regexp: missing closing ]: `[a`>"),
        ("{{ safeHtml \"<b>\" }}", "<b>"),
        ("{{ toUpper (safeHtml \"x\") }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:133: executing \"__alert_T\" at <\"x\">: wrong type for value; expected string; got template.HTML>"),
        ("{{ stripPort $labels.instance }}|{{ stripPort \"[::1]:80\" }}|{{ stripPort \"host\" }}|{{ stripPort \"a:b:c\" }}", "host.example.com|::1|host|a:b:c"),
        ("{{ stripDomain $labels.instance }}|{{ stripDomain \"10.0.0.1:80\" }}|{{ stripDomain \"[::1]:80\" }}|{{ stripDomain \"db.example.com\" }}", "host:9100|10.0.0.1:80|[::1]:80|db"),
        ("{{ graphLink \"rate(x[5m]) > 0\" }} {{ tableLink \"up == 0\" }}", "/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+0&g0.tab=0 /graph?g0.expr=up+%3D%3D+0&g0.tab=1"),
    ]);
}

#[test]
fn query_functions() {
    assert_expansions(&[
        ("{{ with query \"up{job='api'}\" }}{{ . | first | value }} {{ . | first | label \"instance\" }}{{ end }}", "0 b:80"),
        ("{{ range query \"up{job='db'}\" }}{{ .Labels.job }} {{ .Value }}{{ end }}", "db 1"),
        ("{{ query \"up{job='db'}\" | first | strvalue }}|{{ (query \"up{job='node'}\" | first).Value }}", "|1"),
        ("{{ first (query \"nothing_here\") }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <first (query \"nothing_here\")>: error calling first: first() called on vector with no elements>"),
        ("{{ label \"x\" nil }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <label \"x\" nil>: error calling label: runtime error: invalid memory address or nil pointer dereference>"),
        ("{{ first \"x\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:121: executing \"__alert_T\" at <\"x\">: can't handle \"x\" for arg of type template.queryResult>"),
        ("{{ value 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:121: executing \"__alert_T\" at <1>: can't handle 1 for arg of type *template.sample>"),
    ]);
}

#[test]
fn execution_errors() {
    assert_expansions(&[
        ("x{{ .Foo }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:116: executing \"__alert_T\" at <.Foo>: can't evaluate field Foo in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"),
        ("{{ humanize }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize>: wrong number of args for humanize: want 1 got 0>"),
        ("{{ 1 2 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <1>: can't give argument to non-function 1>"),
        ("{{ nil }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <nil>: nil is not a command>"),
        ("{{ $labels.job.foo }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:122: executing \"__alert_T\" at <$labels.job.foo>: can't evaluate field foo in type string>"),
        ("{{ range $value }}x{{ end }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:121: executing \"__alert_T\" at <$value>: range can't iterate over 1.234567891e+06>"),
        ("{{ .Labels.job 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:122: executing \"__alert_T\" at <.Labels.job>: job is not a method but has arguments>"),
        ("line one\nline two {{ humanize \"x\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:2:12: executing \"__alert_T\" at <humanize \"x\">: error calling humanize: strconv.ParseFloat: parsing \"x\": invalid syntax>"),
        ("{{ template \"nope\" }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:124: executing \"__alert_T\" at <{{template \"nope\"}}>: template \"nope\" not defined>"),
        ("{{ printf 1 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:122: executing \"__alert_T\" at <1>: expected string; found 1>"),
        ("{{ toUpper nil }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:123: executing \"__alert_T\" at <nil>: cannot assign nil to string>"),
        ("{{ toUpper .Labels }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:123: executing \"__alert_T\" at <.Labels>: wrong type for value; expected string; got map[string]string>"),
    ]);
}

#[test]
fn parse_errors() {
    assert_check_errors(&[
        (
            "{{ foo }}",
            "template: __alert_T:1: function \"foo\" not defined",
        ),
        ("{{ if }}", "template: __alert_T:1: missing value for if"),
        ("{{ end }}", "template: __alert_T:1: unexpected {{end}}"),
        (
            "{{ range $labels }}",
            "template: __alert_T:1: unexpected EOF",
        ),
        (
            "{{ $undefined }}",
            "template: __alert_T:1: undefined variable \"$undefined\"",
        ),
        (
            "{{ \"a\" | \"b\" }}",
            "template: __alert_T:1: non executable command in pipeline stage 2",
        ),
        (
            "{{ printf \"%d\" 1",
            "template: __alert_T:1: unclosed action",
        ),
        ("{{ (1 }}", "template: __alert_T:1: unclosed left paren"),
        (
            "{{ 1) }}",
            "template: __alert_T:1: unexpected \")\" in command",
        ),
        (
            "{{ break }}",
            "template: __alert_T:1: {{break}} outside {{range}}",
        ),
        (
            "{{ range . }}{{ else }}{{ continue }}{{ end }}",
            "template: __alert_T:1: {{continue}} outside {{range}}",
        ),
        ("{{ else }}", "template: __alert_T:1: unexpected {{else}}"),
        (
            "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
            "template: __alert_T:1: expected end; found {{else}}",
        ),
        (
            "line\n{{ .a.b. }}",
            "template: __alert_T:2: unexpected <.> in operand",
        ),
        (
            "{{ \"unterminated }}",
            "template: __alert_T:1: unterminated quoted string",
        ),
        (
            "{{ 1.2.3 }}",
            "template: __alert_T:1: unexpected \".3\" in operand",
        ),
        (
            "{{ @ }}",
            "template: __alert_T:1: unexpected \"@\" in command",
        ),
        (
            "{{/* unclosed }}",
            "template: __alert_T:1: unclosed comment",
        ),
        (
            "{{ range $a, $b, $c := . }}{{ end }}",
            "template: __alert_T:1: too many declarations in range",
        ),
        (
            "{{ with $x := 1 }}{{ end }}{{ $x }}",
            "template: __alert_T:1: undefined variable \"$x\"",
        ),
        (
            "{{ define \"a\" }}x{{ end }}{{ define \"a\" }}y{{ end }}",
            "template: __alert_T:1: template: multiple definition of template \"a\"",
        ),
        (
            "{{ template foo }}",
            "template: __alert_T:1: unexpected \"foo\" in template clause",
        ),
        (
            "{{ 99999999999999999999 }}",
            "template: __alert_T:1: integer overflow: \"99999999999999999999\"",
        ),
        ("{{ \"\\q\" }}", "template: __alert_T:1: invalid syntax"),
        (
            "{{ $x := }}",
            "template: __alert_T:1: missing value for command",
        ),
        (
            "{{ nil.x }}",
            "template: __alert_T:1: unexpected . after term \"nil\"",
        ),
        (
            "{{ 1x }}",
            "template: __alert_T:1: bad number syntax: \"1x\"",
        ),
        (
            "{{ 'ab' }}",
            "template: __alert_T:1: malformed character constant: 'ab'",
        ),
        (
            "{{ block \"x\" }}{{ end }}",
            "template: __alert_T:1: missing value for block clause",
        ),
    ]);
}

#[test]
fn valid_templates_pass_the_check() {
    assert_eq!(
        check("T", "{{ humanize $value }} on {{ $labels.instance }}"),
        Ok(())
    );
    assert_eq!(check("T", "plain text"), Ok(()));
}

#[test]
fn external_url_functions_use_the_alerts_url() {
    // promtool runs rules without an external URL, so these two come from
    // Prometheus's code rather than its output: the URL and its path.
    assert_eq!(
        expand("{{ externalURL }} {{ pathPrefix }}"),
        "http://prom.example.com:9090/prefix /prefix"
    );
    let mut spaced = alert();
    spaced.external_url = "https://example.com/my%20prom/?x=1".into();
    assert_eq!(
        expand_alert("T", "{{ pathPrefix }}", &spaced, 0, &query_up),
        "/my prom/"
    );
}

#[test]
fn runaway_templates_end_in_errors() {
    let recursive = expand(r#"{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}"#);
    assert!(
        recursive.contains("exceeded maximum template depth"),
        "{recursive}"
    );

    let doubling: String = (0..40)
        .map(|i| format!(r#"{{{{ define "t{i}" }}}}{{{{ template "t{}" }}}}{{{{ template "t{}" }}}}{{{{ end }}}}"#, i + 1, i + 1))
        .collect::<String>()
        + r#"{{ define "t40" }}x{{ end }}{{ template "t0" }}"#;
    let expanded = expand(&doubling);
    assert!(
        expanded.starts_with("<error expanding template:"),
        "{}",
        &expanded[..100.min(expanded.len())]
    );

    let parenthesized =
        |depth: usize| format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
    let too_nested = check("T", &parenthesized(200));
    assert!(
        too_nested
            .as_ref()
            .is_err_and(|e| e.contains("nesting deeper")),
        "{too_nested:?}"
    );
    let nested = parenthesized(90);
    assert_eq!(expand(&nested), "1");

    let wide = r#"{{ range $labels }}{{ $s := printf "%1000000d" 1 }}{{ end }}"#.repeat(30);
    let expanded = expand(&wide);
    assert!(
        expanded.contains("function results exceed"),
        "{}",
        &expanded[..100.min(expanded.len())]
    );

    let blowup = expand(&format!(
        r#"{{{{ reReplaceAll "" "{}" "{}" }}}}"#,
        "x".repeat(5000),
        "y".repeat(5000)
    ));
    assert!(
        blowup.contains("could exceed"),
        "{}",
        &blowup[..100.min(blowup.len())]
    );
}
#[test]
fn time_methods() {
    assert_expansions(&[
        ("{{ (toTime 1679000000.123).Format \"2006-01-02T15:04:05.000Z07:00\" }}|{{ (1679000000.123 | toTime).Format \"Mon Jan _2 3:4:5 PM MST 06 .999 ,00\" }}", "2023-03-16T20:53:20.122Z|Thu Mar 16 8:53:20 PM UTC 23 .122 ,12"),
        ("{{ with toTime 1679000000.123 }}{{ .Year }} {{ .Month }} {{ .Day }} {{ .Hour }} {{ .Minute }} {{ .Second }} {{ .Nanosecond }} {{ .YearDay }} {{ .Weekday }}{{ end }}", "2023 March 16 20 53 20 122000000 75 Thursday"),
        ("{{ (toTime -86400.5).Format \"Monday, January 2 2006 15:04:05.00 -0700 -07:00 -07 Z0700 __2 002 pm 03 _2006 .9\" }}", "Tuesday, December 30 1969 23:59:59.50 +0000 +00:00 +00 Z 364 364 pm 11 _1969 .5"),
        ("{{ (toTime 1.5).UnixMilli }} {{ (toTime 1.5).UnixMicro }} {{ (toTime 1.5).UnixNano }} {{ (toTime 1.5).UTC }} {{ (toTime 1.5).String }}", "1500 1500000 1500000000 1970-01-01 00:00:01.5 +0000 UTC 1970-01-01 00:00:01.5 +0000 UTC"),
        ("{{ (toTime 1.5).Foo }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:123: executing \"__alert_T\" at <1.5>: can't evaluate field Foo in type *time.Time>"),
        ("{{ (toTime 1).Format 5 }}", "<error expanding template: error executing template __alert_T: template: __alert_T:1:133: executing \"__alert_T\" at <5>: expected string; found 5>"),
    ]);
}

#[test]
fn mangled_templates_never_panic() {
    // Templates from a user's file can be anything: splice and cut pieces of
    // template syntax at random and expand whatever comes out.
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{{-",
        "-}}",
        "{{/*",
        "*/}}",
        "(",
        ")",
        "|",
        "$",
        "$x",
        ":=",
        "=",
        ".",
        ".Labels",
        ".Value",
        "\"",
        "`",
        "'",
        "\\",
        " ",
        "\n",
        "-",
        "0x",
        "1e",
        "9",
        "é",
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
        "nil",
        "true",
        "printf",
        "\"%",
        "%v",
        "%*d",
        "%.9999f",
        "humanize",
        "query",
        "first",
        "index",
        "slice",
        "len",
        "toTime",
        ".Format",
        "reReplaceAll",
        "match",
        "\"(\"",
        "\"[\"",
        "args",
        "eq",
        "and",
        "or",
        "not",
        ",",
        "$labels",
        "$value",
    ];
    let mut seed: u64 = 0x5eed;
    let mut random = |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    };
    for _ in 0..3000 {
        let mut template = String::new();
        for _ in 0..random(24) {
            template.push_str(PIECES[random(PIECES.len())]);
            if random(3) == 0 {
                template.push(' ');
            }
        }
        let _ = check("T", &template);
        let _ = expand(&template);
    }
}

#[test]
fn any_regular_expression_compiles_or_errs_without_panic() {
    const CHARS: &[char] = &[
        '\\', '[', ']', '(', ')', '{', '}', '^', '$', '*', '+', '?', '|', '.', '-', ':', ',', 'P',
        'p', 'Q', 'E', 'x', 'd', 'w', '0', '1', '7', '9', 'a', 'z', '_', '<', '>', '=', 'é', 'i',
        '&', '~',
    ];
    let mut seed: u64 = 0x7e57_ab1e;
    let mut random = |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    };
    for _ in 0..10_000 {
        let pattern: String = (0..random(12))
            .map(|_| CHARS[random(CHARS.len())])
            .collect();
        let _ = super::regexp::compile(&pattern);
    }
}
