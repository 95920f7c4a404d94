//! sonde's alert templates against the real Prometheus: every template of a
//! corpus is expanded by `expand_alert`, written as the annotation of an
//! alerting rule with what sonde expanded as the expected annotation, and
//! `promtool test rules` (Prometheus 2.42) must agree on every one. Templates
//! that do not parse go through `promtool check rules` against `check`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::TempDir;
use sonde::alert::template::{check, expand_alert, AlertData, QuerySample};
use sonde::model::Labels;

const PROMTOOL: &str = "/usr/bin/promtool";
const EXTERNAL_URL: &str = "http://prom.example.com:9090/prefix";

/// The alerting input: one `probe` series per value worth testing.
const PROBE_VALUES: &[(&str, &str, f64)] = &[
    ("zero", "0", 0.0),
    ("negative", "-1234.5", -1234.5),
    ("nan", "NaN", f64::NAN),
    ("inf", "Inf", f64::INFINITY),
    ("tiny", "1e-9", 1e-9),
    ("big", "1234567.891", 1234567.891),
    ("duration", "93784.5", 93784.5),
    ("timestamp", "1679000000.123", 1679000000.123),
    ("fraction", "0.8765", 0.8765),
];

/// Series `query` may select, beside the probes.
const UP_SERIES: &[(&str, &str, f64)] = &[
    ("node", "a:9100", 1.0),
    ("api", "b:80", 0.0),
    ("db", "c:5432", 1.0),
];

/// (value case, template). Query results come in no fixed order from
/// promtool, so templates that show more than one sample sort them first.
const CORPUS: &[(&str, &str)] = &[
    // Printing values and the variables Prometheus defines.
    ("big", "{{ $value }}"),
    ("zero", "{{ $value }}"),
    ("negative", "{{ $value }}"),
    ("nan", "{{ $value }}"),
    ("inf", "{{ $value }}"),
    ("tiny", "{{ .Value }}"),
    ("big", "{{ $labels }}"),
    ("big", "{{ $labels.instance }} of {{ $labels.job }}"),
    ("big", "[{{ $labels.missing }}]"),
    ("big", "[{{ index $labels \"missing\" }}] [{{ index $labels \"job\" }}]"),
    ("big", "{{ $externalLabels.cluster }} {{ $externalURL }} {{ .ExternalLabels }}"),
    ("big", "{{ . }}"),
    ("big", "x{{ .Foo }}"),
    ("big", "{{ (args 1 \"a\").arg5 }} {{ args 1 \"a\" 2.5 true }}"),
    // Control structures, variables, trimming, comments.
    ("big", "{{ if gt $value 1000.0 }}high{{ else if gt $value 10.0 }}mid{{ else }}low{{ end }}"),
    ("negative", "{{ if lt $value 0.0 }}below zero{{ end }}!"),
    ("big", "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
    ("big", "{{ range $labels }}[{{ . }}]{{ else }}none{{ end }}"),
    ("big", "{{ range $i, $e := sortByLabel \"job\" (query \"up\") }}{{ $i }}:{{ $e.Labels.job }} {{ end }}"),
    ("big", "{{ range sortByLabel \"job\" (query \"up\") }}{{ if eq .Labels.job \"api\" }}{{ continue }}{{ end }}{{ .Labels.job }}{{ if eq .Labels.job \"db\" }}{{ break }}{{ end }},{{ end }}"),
    ("big", "{{ range query \"nothing_here\" }}x{{ else }}empty{{ end }}"),
    ("big", "{{ with $labels.job }}job {{ . }}{{ end }} {{ with $labels.nope }}x{{ else }}no nope{{ end }}"),
    ("big", "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}x={{ $x }}"),
    ("big", "a  {{- \" b \" -}}  c {{/* a comment */}} d\n{{- /* trimmed */ -}}\ne"),
    ("big", "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" $labels.job }}{{ block \"b\" 5 }}<{{ . }}>{{ end }}"),
    ("big", "{{ template \"nope\" }}"),
    ("big", "{{ \"quoted \\\"x\\\"\\t\\u00e9\" }} {{ `raw\\n` }} {{ 0x1F }} {{ 1e3 }} {{ -2.50 }} {{ 'a' }}"),
    ("big", "{{ (first (query \"up{job='api'}\")).Labels.instance }}"),
    // Comparisons and logic.
    ("big", "{{ eq 1 1 }} {{ eq \"a\" \"b\" \"a\" }} {{ ne 1 2 }} {{ le 2 2 }} {{ ge 1.5 2.5 }} {{ lt \"a\" \"b\" }}"),
    ("big", "{{ eq $value 1 }}"),
    ("big", "{{ lt true false }}"),
    ("big", "{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ not 0 }} {{ and 1 2 }} {{ or 0 false }}"),
    ("big", "{{ len $labels }} {{ len \"héllo\" }} {{ len (query \"up\") }}"),
    ("big", "{{ len 3 }}"),
    ("big", "{{ index \"abc\" 1 }} {{ slice \"hello\" 1 3 }} {{ slice \"hello\" 2 }}"),
    ("big", "{{ index $labels 1 }}"),
    ("big", "{{ index (query \"nothing_here\") 0 }}"),
    // printf and friends.
    ("big", "{{ printf \"%.2f\" $value }} {{ printf \"%d\" 42 }} {{ printf \"%5.1f|%-6s|%06.2f\" 3.14159 \"ab\" -2.5 }}"),
    ("big", "{{ printf \"%v %d %s %q %x %e %g %f %t %%\" 1.5 42 \"s\" \"q\" 255 1234.5 0.000012 3.14159 true }}"),
    ("big", "{{ printf \"%+d|% d|%X|%#x|%o|%b|%c|%q|%U|%08.3d|%.0d|\" 5 5 255 255 8 5 65 65 65 7 0 }}"),
    ("big", "{{ printf \"%+.2f|%08.2f|%E|%.0e|%G|%.3g|%10.3g|%g|%g\" 3.14159 -3.14159 0.000123 5.5 1e-7 1234.5678 0.00001234 100000.0 1000000.0 }}"),
    ("big", "{{ printf \"%d|%s\" 1.5 1 }} {{ printf \"%d %d\" 1 }} {{ printf \"%d\" 1 2 }} {{ printf \"%z\" 1 }} {{ printf \"%d\" nil }}"),
    ("big", "{{ printf \"%v|%s\" $labels (first (query \"up{job='db'}\")) }}"),
    ("nan", "{{ printf \"%.2f|%5.1f|%e|%v\" $value $value $value $value }}"),
    ("inf", "{{ printf \"%.2f|%05.1f|%g\" $value $value $value }}"),
    ("big", "{{ print 1 2 \"a\" \"b\" 3 true nil 1.5 }} {{ println 1 \"x\" }}"),
    ("big", "{{ html \"a<b>&'\\\"\" }} {{ js \"a<b>&='\\\"\\\\ é \\u0001\" }} {{ urlquery \"a b&c/é\" }}"),
    ("big", "{{ $labels.job | printf \"%s!\" }} {{ \"x\" | printf \"%s-%s\" \"y\" }}"),
    // humanize family.
    ("big", "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizePercentage $value }}"),
    ("zero", "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizeDuration $value }} {{ humanizePercentage $value }}"),
    ("negative", "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizeDuration $value }} {{ humanizePercentage $value }}"),
    ("nan", "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizeDuration $value }} {{ humanizeTimestamp $value }}"),
    ("inf", "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizeDuration $value }} {{ humanizeTimestamp $value }}"),
    ("tiny", "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizeDuration $value }} {{ humanizePercentage $value }}"),
    ("fraction", "{{ humanize $value }} {{ humanizeDuration $value }} {{ humanizePercentage $value }}"),
    ("duration", "{{ humanizeDuration $value }} {{ humanizeDuration 59.99 }} {{ humanizeDuration 3600 }} {{ humanizeDuration 0.0012345 }}"),
    ("duration", "{{ humanizeDuration 1e20 }} {{ humanizeDuration -1e20 }} {{ humanizeDuration 86400 }}"),
    ("timestamp", "{{ humanizeTimestamp $value }} {{ humanizeTimestamp -1.5 }} {{ humanizeTimestamp 0 }}"),
    ("big", "{{ humanize 1e30 }} {{ humanize 1e-30 }} {{ humanize 999.95 }} {{ humanize1024 1e30 }} {{ humanize1024 -1025 }}"),
    ("big", "{{ humanize \"1234.5\" }} {{ humanize \"1_000\" }} {{ humanize \"inf\" }} {{ humanize1024 \"2048\" }}"),
    ("big", "{{ humanize \"abc\" }}"),
    ("big", "{{ humanize true }}"),
    ("big", "{{ humanize \"1e400\" }}"),
    ("big", "{{ humanizeTimestamp 1e20 }}"),
    ("timestamp", "{{ toTime $value }} {{ (toTime 1.5).Unix }}"),
    ("nan", "{{ toTime $value }}"),
    // Strings, regular expressions, links.
    ("big", "{{ title \"hello wORLD foo-bar x_y 1a\" }} {{ toUpper \"straße\" }} {{ toLower \"ÀB\" }}"),
    ("big", "{{ match \"^a\" \"abc\" }} {{ match \"\\\\d\" \"٣\" }} {{ match \"^node$\" $labels.job }}"),
    ("big", "{{ reReplaceAll \"(\\\\w+)@(\\\\w+)\" \"$2.$1x${1}y$$\" \"joe@host bob@srv\" }} {{ reReplaceAll \"a*\" \"-\" \"baaac\" }}"),
    ("big", "{{ reReplaceAll \":.*\" \"\" $labels.instance }} {{ reReplaceAll \"[.]\" \"_\" \"a.b.c\" }}"),
    ("big", "{{ reReplaceAll \"(\" \"x\" \"y\" }}"),
    ("big", "{{ match \"(\" \"y\" }}"),
    ("big", "{{ safeHtml \"<b>\" }} {{ printf \"%s\" (safeHtml \"<i>\") }}"),
    ("big", "{{ toUpper (safeHtml \"x\") }}"),
    ("big", "{{ stripPort $labels.instance }}|{{ stripPort \"[::1]:80\" }}|{{ stripPort \"host\" }}|{{ stripPort \"a:b:c\" }}"),
    ("big", "{{ stripDomain $labels.instance }}|{{ stripDomain \"10.0.0.1:80\" }}|{{ stripDomain \"[::1]:80\" }}|{{ stripDomain \"db.example.com\" }}"),
    ("big", "{{ graphLink \"rate(x[5m]) > 0\" }} {{ tableLink \"up == 0\" }}"),
    ("big", "{{ parseDuration \"1h30m\" }} {{ parseDuration \"0\" }} {{ parseDuration \"1y1w1d1h1m1s1ms\" }} {{ parseDuration \"90s\" }}"),
    ("big", "{{ parseDuration \"1.5h\" }}"),
    ("big", "{{ parseDuration \"300000y\" }}"),
    // query and its helpers.
    ("big", "{{ with query \"up{job='api'}\" }}{{ . | first | value }} {{ . | first | label \"instance\" }}{{ end }}"),
    ("big", "{{ range query \"up{job='db'}\" }}{{ .Labels.job }} {{ .Value }}{{ end }}"),
    ("big", "{{ query \"up{job='db'}\" | first | strvalue }}|{{ (query \"up{job='node'}\" | first).Value }}"),
    ("big", "{{ range sortByLabel \"instance\" (query \"up\") }}{{ .Labels.instance }} {{ end }}"),
    ("big", "{{ first (query \"nothing_here\") }}"),
    ("big", "{{ label \"x\" nil }}"),
    ("big", "{{ first 1 }}"),
    ("big", "{{ humanize }}"),
    ("big", "{{ 1 2 }}"),
    ("big", "{{ nil }}"),
    ("big", "{{ $labels.job.foo }}"),
    ("big", "{{ $value.foo }}"),
    ("big", "{{ range $value }}x{{ end }}"),
    ("big", "{{ .Labels.job 1 }}"),
    ("big", "line one\n{{ humanize \"x\" }}"),
    // Positions, scopes and odd corners.
    ("big", "line one\nline two {{ humanize \"x\" }}"),
    ("big", "{{ define \"x\" }}{{ humanize \"a\" }}{{ end }}ok {{ template \"x\" }}"),
    ("big", "{{ template \"x\" }}{{ define \"x\" }}[{{ .Value }}]{{ end }}"),
    ("big", "{{ define \"x\" }}{{ $ }}-{{ . }}{{ end }}{{ template \"x\" 5 }}"),
    ("big", "{{ with $x := $labels.job }}{{ $x }}{{ end }} {{ $x := 5 }}{{ $x := 6 }}{{ $x }}"),
    ("big", "{{ with 0 }}x{{ else }}zero{{ end }} {{ if query \"nothing_here\" }}a{{ else }}b{{ end }}"),
    ("big", "a\n\n{{- 1 }}\n {{3 -}} \n {{-3}} x {{- /* c */ -}} y"),
    ("big", "{{ $labels.job | toUpper | printf \"%q\" }} {{ $labels.instance | reReplaceAll \":.*\" \"\" }}"),
    ("big", "{{ \"a\" | eq \"a\" }} {{ 1 | eq 2 3 }} {{ true | not }} {{ if and $labels.job (eq $labels.job \"node\") }}yes{{ end }}"),
    ("big", "{{ len (args) }} {{ index (args 1 2) \"arg1\" }} {{ (index (query \"up{job='db'}\") 0).Value }}"),
    ("big", "{{ html (first (query \"up{job='db'}\")) }} {{ js 5 }} {{ urlquery 1 \"a\" }} {{ print (query \"nothing_here\") }}"),
    ("big", "{{ 1.0 }} {{ 1e21 }} {{ 100000000.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 123456.7 }} {{ 0755 }} {{ 1_000 }}"),
    ("big", "{{ printf \"%T %T %T %T %T\" 1 1.5 \"s\" $labels nil }}"),
    ("big", "{{ printf \"%*d|%-*d|\" 5 3 4 7 }} {{ printf \"%.3s|%5s|%x|%q\" \"héllo\" \"é\" \"\" 'x' }}"),
    ("big", "{{ printf \"%08.3f|%+e|%g|%.0f|%.1f|%G|%.10g|%6.2v\" -1.5 0.0 1e-5 2.5 0.25 1e21 1234567.891 3.14159 }}"),
    ("big", "{{ printf \"%c|%U|%o|%O|%#b|%x|%X\" 0x1F600 0x1F600 64 64 5 -255 -1 }}"),
    ("big", "{{ printf \"%d\" $labels.job }} {{ printf \"%s\" nil }} {{ printf \"%v\" (safeHtml \"x\") }} {{ printf \"%5t|%-7v|\" true false }}"),
    ("big", "{{ printf 1 }}"),
    ("big", "{{ printf }}"),
    ("big", "{{ printf $value }}"),
    ("big", "{{ humanize 1 2 }}"),
    ("big", "{{ 1 | humanize 2 }}"),
    ("big", "{{ toUpper 1 }}"),
    ("big", "{{ toUpper nil }}"),
    ("big", "{{ toUpper .Labels }}"),
    ("big", "{{ first \"x\" }}"),
    ("big", "{{ value 1 }}"),
    ("big", "{{ label 1 (first (query \"up{job='db'}\")) }}"),
    ("big", "{{ sortByLabel \"job\" 1 }}"),
    ("big", "{{ and }}"),
    ("big", "{{ eq 1 }}"),
    ("big", "{{ lt 1 1.5 }}"),
    ("big", "{{ template \"x\" 1 2 }}{{ define \"x\" }}{{ end }}"),
    ("big", "{{ humanize 1e300 }} {{ humanizeDuration 3599.9 }} {{ humanizeDuration -3601 }} {{ humanizeTimestamp \"1679000000\" }} {{ toTime \"1679000000\" }}"),
    ("big", "{{ title \"\" }}|{{ title \"o'neil mc-donald élan\" }}|{{ toLower \"ÉCOLE\" }}"),
    ("big", "{{ match \"[[:alpha:]]+[0-9]\" \"ab1\" }} {{ match \"(?i)NODE\" $labels.job }} {{ reReplaceAll \"[^a-z]\" \"\" \"a1-b2_c\" }} {{ reReplaceAll \"\\\\bx\" \"y\" \"x xx éx\" }}"),
    ("big", "{{ match \"a{2,}\" \"aa\" }} {{ reReplaceAll \"(?P<h>[a-z]+):(?P<p>\\\\d+)\" \"${p}@${h}\" \"host:80\" }}"),
    ("big", "{{ match \"*\" \"a\" }}"),
    ("big", "{{ match \"[a\" \"a\" }}"),
    ("big", "{{ match \"a)\" \"a\" }}"),
    ("big", "{{ match \"a{2,1}\" \"a\" }}"),
    ("big", "{{ match \"\\\\q\" \"a\" }}"),
    ("big", "{{ match \"(?P<n>\" \"a\" }}"),
    ("big", "{{ match \"x{1001}\" \"a\" }}"),
    ("big", "{{ match \"[z-a]\" \"a\" }}"),
    ("big", "{{ match \"(?<n>a)\" \"a\" }}"),
    ("big", "{{ match \"\\\\pX\" \"a\" }}"),
    ("big", "{{ match \"[[:foo:]]\" \"a\" }}"),
    ("big", "{{ match \"a\\\\\" \"a\" }}"),
    ("big", "{{ match \"(?z)\" \"a\" }}"),
    ("big", "{{ match \"a{,2}\" \"a{,2}\" }}"),
    ("big", "{{ match \"\\\\C\" \"a\" }}"),
    ("big", "{{ match \"+a\" \"a\" }}"),
    ("big", "{{ 1 | }}"),
    ("big", "{{ 0x1p3 }} {{ 0x1.8p1 }} {{ 0X_1P-2 }} {{ humanize \"0x1p-2\" }} {{ humanize \"0x1.fffffffffffffp1023\" }}"),
    ("big", "{{ with args 0.5 }}{{ .Labels.instance }}{{ end }}"),
    ("big", "{{ stripPort (args).x }}"),
    ("big", "{{ printf \"node\" nil \"x\" }} {{ slice (toTime 1) 0 }}"),
    ("big", "{{ eq $externalLabels (toTime 1679000000.5) }}"),
    ("big", "{{ eq $labels (args 1 \"two\") }}"),
    ("big", "{{ index (args 1 \"two\") \"node\" 2 }}"),
    ("big", "x{{ $x = 1 }}"),
    ("big", "{{ $labels.nope | len }} {{ $externalLabels.nope }}|{{ .ExternalURL }}"),
    ("big", "{{ range $i, $e := $labels }}{{ $i }}{{ end }} {{ $value | humanize }} {{ range $labels }}{{ $v := . }}{{ end }}ok"),
    ("big", "{{ range sortByLabel \"job\" (query \"up\") }}{{ humanize .Labels.job }}{{ end }}"),
    ("big", "{{ (toTime 1.5).Foo }}"),
    ("big", "{{ (toTime 1679000000.5).UnixMilli }} {{ (toTime 1.5).UTC }} {{ (toTime 1.5).String }}"),
    ("big", "{{ index (args 1 \"x\") \"arg1\" | printf \"%q\" }} {{ (args 1).arg0 | printf \"%T\" }}"),
    ("big", "{{ $m := args \"a\" }}{{ range $k, $v := $m }}{{ $k }}->{{ $v }}{{ end }} {{ len $m }}"),
    ("big", "{{ $s := query \"up{job='db'}\" }}{{ index $s 0 | value }} {{ slice $s 0 1 | len }} {{ (index $s 0).Labels.instance }}"),
    ("big", "{{ with first (query \"up{job='db'}\") }}{{ .Labels.job }} {{ .Value }} {{ .Nope }}{{ end }}"),
    ("big", "{{ eq (first (query \"up{job='db'}\")) (first (query \"up{job='db'}\")) }}"),
    ("big", "{{ eq $labels $labels }}"),
    ("big", "{{ eq nil nil }}|{{ eq $labels.nope \"\" }}|{{ eq (index (args) \"x\") nil }}"),
    ("big", "{{ not $labels }} {{ not (query \"nothing_here\") }} {{ and $labels.nope 1 }}|{{ or $labels.nope (args) 0 }}"),
    ("big", "{{ if not (match \"^db\" $labels.job) }}not db{{ end }} {{ $labels.job | match \"^no\" }}"),
    ("big", "{{ humanizePercentage (humanize1024 2048 | len) }} {{ humanize (len $labels) }}"),
    ("big", "{{ printf \"%s %v %d\" (toTime 0) (query \"nothing_here\") (len (query \"up\")) }}"),
    ("big", "{{ printf \"%-8.3s|%8.3q|%.1q\" \"abcdef\" \"abcdef\" \"xyz\" }}"),
    ("big", "{{ printf \"%6.2f%%|%+.1e|% .3g|%#.3x\" 12.3456 -0.000123 2.0 1.0 }}"),
    ("big", "{{ printf \"%5d|%-5d|%05d|%x|%#o\" -42 -42 -42 3735928559 8 }}"),
    ("big", "{{ printf \"%q|%+q|%x\" \"tab\\there\\x00\" \"é\" \"é\" }}"),
    ("big", "{{ printf \"%v|%v|%v\" 1e-7 123456789.0 0.000123456 }}"),
    ("big", "{{ printf \"%.2g|%.1g|%.0g|%g|%g\" 0.000999 95.0 0.5 1e100 5e-324 }}"),
    ("big", "{{ printf \"%e|%.3e|%E\" 1.0 999999.9999 1e-300 }}"),
    ("big", "{{ printf \"%f|%.1f|%.3f|%f\" 1e20 0.05 -0.0005 123456789.123456789 }}"),
    ("big", "{{ 1 }}{{ 2 }} {{ \"\" }}|{{ `` }}|{{ print }}|{{ println }}|"),
    ("negative", "{{ humanize -0.5 }} {{ humanize -999999 }} {{ humanize1024 -1 }} {{ humanizeDuration -0.5 }} {{ humanizePercentage -1 }}"),
    ("big", "{{ humanizeDuration 1.5 }} {{ humanizeDuration 61 }} {{ humanizeDuration 86399.99 }} {{ humanizeDuration 1e-10 }} {{ humanizeDuration \"90\" }}"),
    ("big", "{{ humanize 1000 }} {{ humanize 999999.9 }} {{ humanize 0.001 }} {{ humanize 0.00099999 }} {{ humanize 123.456e15 }}"),
    ("big", "{{ humanizeTimestamp 253402300800 }} {{ humanizeTimestamp -62135596801 }} {{ humanizeTimestamp 0.0005 }} {{ humanizeTimestamp -0.0005 }}"),
    ("big", "{{ stripPort \":80\" }}|{{ stripPort \"[::1]:80:90\" }}|{{ stripPort \"\" }}|{{ stripDomain \"\" }}|{{ stripDomain \"a.b.c:\" }}|{{ stripDomain \"localhost:80\" }}"),
    ("big", "{{ title \"ärger über_alles a1b c\" }}|{{ toUpper \"ﬀ ǳ\" }}|{{ toLower \"ǲ ΣΑΣ\" }}"),
    ("big", "{{ reReplaceAll \"^(.)\" \"$1$1\" \"abc\" }} {{ reReplaceAll \"(a)(b)?\" \"[$2]\" \"ac\" }} {{ reReplaceAll \"\" \"-\" \"ab\" }} {{ reReplaceAll \"x\" \"$\" \"axb\" }}"),
    ("big", "{{ match \"\\\\w+\" \"é\" }} {{ match \"\\\\s\" \"\\u00a0\" }} {{ match \"[\\\\d]\" \"٣\" }} {{ match \"\\\\pL\" \"é\" }} {{ match \"[[:^digit:]]\" \"1\" }}"),
    ("big", "{{ graphLink \"up{job=\\\"a b\\\"}\" }}|{{ tableLink \"\" }}|{{ urlquery \"~-_.!*'();:@&=+$,/?#[]\" }}"),
    ("big", "{{ parseDuration \"1d12h\" }} {{ parseDuration \"5m30s500ms\" }} {{ parseDuration \"1w\" }} {{ parseDuration \"292y\" }}"),
    ("big", "{{ parseDuration \"1h1h\" }}"),
    ("big", "{{ parseDuration \"-1h\" }}"),
    ("big", "{{ js \"\\u2028\\u00ad\" }} {{ html \"\\u0000\" }} {{ js (safeHtml \"<\") }} {{ html 1 \"a\" 2 }}"),
    ("big", "{{ define \"in\" }}{{ .x }}{{ end }}{{ template \"in\" (args 1) }}|{{ template \"in\" $labels }}|{{ block \"b2\" $labels.job }}{{ . }}{{ end }}"),
    ("big", "{{ range $i, $_ := query \"up{job='db'}\" }}{{ $i }}{{ end }} {{ $ := 1 }}{{ $ }}"),
    ("big", "{{ if 0 }}a{{ else if 0.0 }}b{{ else if \"\" }}c{{ else if $labels.nope }}d{{ else if (args) }}e{{ else if nil }}f{{ else }}g{{ end }}"),
    ("big", "{{ if eq $labels.job \"node\" \"db\" }}match{{ end }} {{ if ne $value 0.0 }}nonzero{{ end }} {{ if ge (len $labels) 3 }}three{{ end }}"),
    ("big", "{{ $x := \"outer\" }}{{ with \"inner\" }}{{ $x := . }}{{ $x }}{{ end }} {{ $x }} {{ range $labels }}{{ $x = . }}{{ end }}{{ $x }}"),
    ("big", "{{ template \"t\" }}{{ define \"t\" }}{{ $labels := 5 }}{{ $labels }}{{ end }}"),
    ("timestamp", "{{ (toTime $value).Format \"2006-01-02T15:04:05.000Z07:00\" }}|{{ ($value | toTime).Format \"Mon Jan _2 3:4:5 PM MST 06 .999 ,00\" }}"),
    ("timestamp", "{{ with toTime $value }}{{ .Year }} {{ .Month }} {{ .Day }} {{ .Hour }} {{ .Minute }} {{ .Second }} {{ .Nanosecond }} {{ .YearDay }} {{ .Weekday }}{{ end }}"),
    ("big", "{{ (toTime -86400.5).Format \"Monday, January 2 2006 15:04:05.00 -0700 -07:00 -07 Z0700 __2 002 pm 03 _2006 .9\" }}"),
    ("big", "{{ (toTime 1e9).Format \"20060102150405.000000000\" }}|{{ (toTime 0).Format \"\" }}|{{ (toTime 951782400).Format \"2006-01-02 Jan 002\" }}"),
    ("big", "{{ (toTime 1.5).UnixMicro }} {{ (toTime 1.5).UnixNano }} {{ (toTime 1).Format 5 }}"),
];

/// Templates that do not parse: `check` must report what promtool reports.
const PARSE_ERRORS: &[&str] = &[
    "{{ foo }}",
    "{{ if }}",
    "{{ end }}",
    "{{ range $labels }}",
    "{{ $undefined }}",
    "{{ \"a\" | \"b\" }}",
    "{{ printf \"%d\" 1",
    "{{ (1 }}",
    "{{ 1) }}",
    "{{ break }}",
    "{{ else }}",
    "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
    "line\n{{ .a.b. }}",
    "{{ \"unterminated }}",
    "{{ 1.2.3 }}",
    "{{ @ }}",
    "{{/* unclosed }}",
    "{{ range $a, $b, $c := . }}{{ end }}",
    "{{ with $x := 1 }}{{ end }}{{ $x }}",
    "{{ define \"a\" }}{{ end }}{{ define \"a\" }}x{{ end }}{{ define \"a\" }}y{{ end }}",
    "{{ template foo }}",
    "{{ .Labels.job.1 }}",
    "{{ 99999999999999999999 }}",
    "{{ \"\\q\" }}",
    "{{ $x := }}",
    "{{ range $i, 1 }}{{ end }}",
    "{{ $x, $y := 1 }}",
    "{{ continue }}",
    "{{ with 1 }}{{ else if 2 }}{{ end }}",
    "{{ if 1 }}x",
    "{{ define \"a\" }}",
    "{{ define a }}{{ end }}",
    "{{ | }}",
    "{{ nil.x }}",
    "{{ \"x\".y }}",
    "{{ 1x }}",
    "{{ .a$b }}",
    "{{ 'ab' }}",
    "a\n{{ if }}",
    "{{ else if 1 }}",
    "{{ end }}{{ end }}",
    "{{ block \"x\" }}{{ end }}",
    "{{ 1 | 2 }}",
    "{{ range . }}{{ else }}{{ break }}{{ end }}",
    "{{ (1) (2 }}",
    "{{ `unterminated }}",
    "{{ /* not a comment */ }}",
    "{{ 'a }}",
    "x {{ a.b }}",
    "{{ if 1 }}{{ else }}{{ else if 2 }}{{ end }}",
    "{{ define \"t\" }}{{ $labels }}{{ end }}",
    "{{ range $i, $e := . }}{{ end }}{{ $i }}",
    "{{ 1 }}\n\n{{ end }}",
    "{{ with 1 }}\n{{ else }}\n",
    "{{ printf \"%d\"\n 1 }} {{ foo\n }}",
    "{{ .Labels.job\n| bad }}",
    "{{ $x := 1 2 }}{{ $x.y.z }}{{ ( }}",
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

fn probe_labels(case: &str) -> Labels {
    labels(&[
        ("__name__", "probe"),
        ("instance", "host.example.com:9100"),
        ("job", "node"),
        ("value_case", case),
    ])
}

/// Every series of the test's input, with its labels and value.
fn input_series() -> Vec<(Labels, f64)> {
    let probes = PROBE_VALUES
        .iter()
        .map(|(case, _, value)| (probe_labels(case), *value));
    let ups = UP_SERIES.iter().map(|(job, instance, value)| {
        (
            labels(&[("__name__", "up"), ("job", job), ("instance", instance)]),
            *value,
        )
    });
    probes.chain(ups).collect()
}

/// Answers the simple selectors the corpus uses (`name` or
/// `name{label='value', …}`) from the input series, as promtool would.
fn select(query: &str, _timestamp_ms: i64) -> Result<Vec<QuerySample>, String> {
    let (name, matchers) = match query.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}').ok_or("unclosed selector")?),
        None => (query, ""),
    };
    let wanted: Vec<(&str, &str)> = matchers
        .split(',')
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let (label, value) = m.split_once('=').unwrap_or((m, ""));
            (label.trim(), value.trim().trim_matches(['\'', '"']))
        })
        .collect();
    Ok(input_series()
        .into_iter()
        .filter(|(labels, _)| labels.get("__name__") == Some(name.trim()))
        .filter(|(labels, _)| {
            wanted
                .iter()
                .all(|(l, v)| labels.get(l).unwrap_or("") == *v)
        })
        .map(|(labels, value)| QuerySample { labels, value })
        .collect())
}

fn alert_data(case: &str) -> AlertData {
    let value = PROBE_VALUES
        .iter()
        .find(|(c, _, _)| *c == case)
        .expect("a known case")
        .2;
    AlertData {
        labels: probe_labels(case),
        external_labels: labels(&[("cluster", "prod"), ("region", "eu")]),
        external_url: EXTERNAL_URL.to_string(),
        value,
    }
}

fn rule_name(i: usize) -> String {
    format!("T{i:03}")
}

fn rules_file(templates: &[(&str, &str)]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = templates
        .iter()
        .enumerate()
        .map(|(i, (case, template))| {
            serde_json::json!({
                "alert": rule_name(i),
                "expr": format!("probe{{value_case=\"{case}\"}}"),
                "annotations": {"a": template},
            })
        })
        .collect();
    serde_json::json!({"groups": [{"name": "corpus", "rules": rules}]})
}

fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Expands every template with sonde and has promtool test the rules with
/// those expansions as expected annotations; `Err` carries promtool's report.
fn promtool_disagreements(corpus: &[(&str, &str)]) -> Result<(), String> {
    let dir = TempDir::new("alert-template");
    let mut tests = Vec::new();
    for (i, (case, template)) in corpus.iter().enumerate() {
        let expanded = expand_alert(&rule_name(i), template, &alert_data(case), 0, &select);
        assert!(
            !expanded.is_empty(),
            "template {i} expands to something promtool can compare"
        );
        let series = probe_labels(case);
        let alert_labels: BTreeMap<&str, &str> =
            series.iter().filter(|(n, _)| *n != "__name__").collect();
        tests.push(serde_json::json!({
            "eval_time": "0m",
            "alertname": rule_name(i),
            "exp_alerts": [{"exp_labels": alert_labels, "exp_annotations": {"a": expanded}}],
        }));
    }
    let mut input: Vec<serde_json::Value> = PROBE_VALUES
        .iter()
        .map(|(case, text, _)| {
            serde_json::json!({
                "series": format!("probe{{job=\"node\",instance=\"host.example.com:9100\",value_case=\"{case}\"}}"),
                "values": text,
            })
        })
        .collect();
    input.extend(UP_SERIES.iter().map(|(job, instance, value)| {
        serde_json::json!({"series": format!("up{{job=\"{job}\",instance=\"{instance}\"}}"), "values": value.to_string()})
    }));
    let test_file = serde_json::json!({
        "rule_files": ["rules.json"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "external_labels": {"cluster": "prod", "region": "eu"},
            "external_url": EXTERNAL_URL,
            "input_series": input,
            "alert_rule_test": tests,
        }],
    });
    std::fs::write(dir.0.join("rules.json"), rules_file(corpus).to_string()).unwrap();
    std::fs::write(dir.0.join("test.json"), test_file.to_string()).unwrap();
    let (ok, output) = promtool(&dir.0, &["test", "rules", "test.json"]);
    if ok {
        return Ok(());
    }
    Err(format!("{output}\n{}", summarize(corpus, &output)))
}

/// Each failing alert of promtool's report: the template, then what
/// Prometheus expanded (promtool's `got`) and what sonde expected.
fn summarize(corpus: &[(&str, &str)], output: &str) -> String {
    let mut summary = String::from("In short:\n");
    for block in output.split("alertname: ").skip(1) {
        let name = block.split(',').next().unwrap_or_default();
        let Some(index) = name.strip_prefix('T').and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let annotations = |part: &str| {
            part.split("Annotations:")
                .nth(1)
                .map(|a| a.lines().next().unwrap_or_default().to_string())
        };
        let (expected, got) = block.split_once("got:").unwrap_or((block, ""));
        summary.push_str(&format!(
            "{name} {:?}\n  prometheus: {}\n  sonde:      {}\n",
            corpus[index].1,
            annotations(got).unwrap_or_default(),
            annotations(expected).unwrap_or_default()
        ));
    }
    summary
}

/// Templates where `check` and `promtool check rules` disagree on whether,
/// or how, they fail to parse.
fn parse_disagreements(templates: &[&str]) -> Vec<String> {
    let dir = TempDir::new("alert-template-check");
    let rules: Vec<(&str, &str)> = templates.iter().map(|t| ("big", *t)).collect();
    std::fs::write(dir.0.join("rules.json"), rules_file(&rules).to_string()).unwrap();
    let (_, output) = promtool(&dir.0, &["check", "rules", "rules.json"]);
    let mut mismatches = Vec::new();
    for (i, template) in templates.iter().enumerate() {
        let name = rule_name(i);
        let prefix = format!(
            "rules.json: group \"corpus\", rule {}, \"{name}\": annotation \"a\": ",
            i + 1
        );
        let promtool_error = output.lines().find_map(|line| line.strip_prefix(&prefix));
        let sonde_error = check(&name, template).err();
        if promtool_error != sonde_error.as_deref() {
            mismatches.push(format!(
                "{template:?}\n  promtool: {promtool_error:?}\n  sonde:    {sonde_error:?}"
            ));
        }
    }
    mismatches
}

#[test]
fn expansions_match_promtool() {
    assert!(CORPUS.len() >= 60, "the corpus covers every function");
    if let Err(report) = promtool_disagreements(CORPUS) {
        panic!("promtool disagrees with sonde's expansions:\n{report}");
    }
}

#[test]
fn parse_errors_match_promtool() {
    let parsing: Vec<&&str> = PARSE_ERRORS
        .iter()
        .filter(|t| check("T", t).is_ok())
        .collect();
    assert!(parsing.is_empty(), "these parse: {parsing:?}");
    let mismatches = parse_disagreements(PARSE_ERRORS);
    assert!(
        mismatches.is_empty(),
        "parse errors differ:\n{}",
        mismatches.join("\n")
    );
}

/// A seeded xorshift generator: `below(n)` picks in `0..n`.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Seeded random splices of template syntax: whether each parses must be
/// Prometheus's answer too, and so must what each that parses expands to.
#[test]
fn spliced_templates_match_promtool() {
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{{- ",
        " -}}",
        "{{/*",
        "*/}}",
        "(",
        ")",
        " | ",
        "$x",
        " := ",
        " = ",
        ".",
        ".Labels",
        ".job",
        ".Value",
        "\"",
        "\"a\"",
        "`b`",
        "'c'",
        "-",
        "0x1F",
        "1e3",
        "9",
        "2.5",
        "é",
        "if ",
        "else ",
        "end",
        "range ",
        "with ",
        "break",
        "continue",
        "nil",
        "true",
        "printf ",
        "\"%v %d\"",
        "humanize ",
        "humanizeDuration ",
        "first ",
        "index ",
        "slice ",
        "len ",
        "toTime ",
        "title ",
        "match ",
        "\"^n\"",
        "args ",
        "eq ",
        "lt ",
        "and ",
        "or ",
        "not ",
        ",",
        "$labels",
        "$value",
        "$",
        " ",
        " ",
        " ",
    ];
    let mut random = Random(0x0dd5_eed5);
    let templates: Vec<String> = (0..600)
        .map(|_| {
            let pieces: String = (0..1 + random.below(12))
                .map(|_| random.pick(PIECES))
                .collect();
            format!("x{pieces}")
        })
        .collect();
    let all: Vec<&str> = templates.iter().map(String::as_str).collect();
    let mismatches = parse_disagreements(&all);
    assert!(
        mismatches.is_empty(),
        "parse results differ:\n{}",
        mismatches.join("\n")
    );
    let parsing: Vec<(&str, &str)> = all
        .iter()
        .filter(|t| check("T", t).is_ok())
        .map(|t| ("big", *t))
        .collect();
    assert!(
        parsing.len() >= 20,
        "some spliced templates parse ({})",
        parsing.len()
    );
    if let Err(report) = promtool_disagreements(&parsing) {
        panic!("promtool disagrees with sonde's expansions:\n{report}");
    }
}

/// A random pipeline: operands, function calls with random arguments,
/// parenthesized pipelines and `|` stages, mostly well-formed.
fn random_pipeline(random: &mut Random, depth: usize) -> String {
    const OPERANDS: &[&str] = &[
        "$value",
        "$labels",
        "$labels.job",
        "$labels.nope",
        ".Value",
        ".Labels.instance",
        "$externalLabels",
        "1",
        "-2",
        "0.5",
        "1e-3",
        "1234567.0",
        "\"node\"",
        "\"12.5\"",
        "\"\"",
        "`a b`",
        "true",
        "false",
        "nil",
        ".",
        "'x'",
        "0x10",
        "(args 1 \"two\")",
        "(toTime 1679000000.5)",
    ];
    const FUNCTIONS: &[&str] = &[
        "humanize",
        "humanize1024",
        "humanizeDuration",
        "humanizePercentage",
        "humanizeTimestamp",
        "toTime",
        "title",
        "toUpper",
        "toLower",
        "stripPort",
        "stripDomain",
        "graphLink",
        "tableLink",
        "parseDuration",
        "safeHtml",
        "match",
        "reReplaceAll",
        "printf",
        "print",
        "println",
        "len",
        "index",
        "slice",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and",
        "or",
        "not",
        "html",
        "js",
        "urlquery",
        "args",
    ];
    let mut stages = Vec::new();
    for stage in 0..1 + random.below(2) {
        let mut command = Vec::new();
        if stage == 0 && random.below(3) == 0 {
            command.push(random.pick(OPERANDS).to_string());
        } else {
            command.push(random.pick(FUNCTIONS).to_string());
            for _ in 0..random.below(4) {
                let argument = if depth < 2 && random.below(4) == 0 {
                    format!("({})", random_pipeline(random, depth + 1))
                } else {
                    random.pick(OPERANDS).to_string()
                };
                command.push(argument);
            }
        }
        stages.push(command.join(" "));
    }
    stages.join(" | ")
}

/// Seeded random well-formed templates: actions, `if`, `with` and `range`
/// around random pipelines. Most parse; what they expand to, or the error
/// they meet, must be Prometheus's.
#[test]
fn generated_templates_match_promtool() {
    let mut random = Random(0x7e3a_1a7e);
    let templates: Vec<String> = (0..800)
        .map(|_| {
            let pipeline = random_pipeline(&mut random, 0);
            let body = format!("<{{{{ {} }}}}>", random_pipeline(&mut random, 1));
            match random.below(5) {
                0 => format!("x{{{{ if {pipeline} }}}}{body}{{{{ else }}}}no{{{{ end }}}}"),
                1 => format!("x{{{{ with {pipeline} }}}}{body}{{{{ end }}}}"),
                2 => format!("x{{{{ range $k, $v := $labels }}}}{{{{ $k }}}}{body}{{{{ end }}}}"),
                _ => format!("x{{{{ {pipeline} }}}}"),
            }
        })
        .collect();
    let all: Vec<&str> = templates.iter().map(String::as_str).collect();
    let mismatches = parse_disagreements(&all);
    assert!(
        mismatches.is_empty(),
        "parse results differ:\n{}",
        mismatches.join("\n")
    );
    let parsing: Vec<(&str, &str)> = all
        .iter()
        .filter(|t| check("T", t).is_ok())
        .map(|t| ("big", *t))
        .collect();
    assert!(
        parsing.len() >= 400,
        "most generated templates parse ({})",
        parsing.len()
    );
    if let Err(report) = promtool_disagreements(&parsing) {
        panic!("promtool disagrees with sonde's expansions:\n{report}");
    }
}

/// Seeded random `printf` formats (flags, widths, precisions, verbs) over
/// arguments of every type: Go's `fmt` output, byte for byte.
#[test]
fn generated_printf_formats_match_promtool() {
    const FLAGS: &[&str] = &["", "", "", "+", "-", "#", " ", "0", "-0", "+0"];
    const WIDTHS: &[&str] = &["", "", "", "1", "5", "12", "*"];
    const PRECISIONS: &[&str] = &["", "", "", ".", ".0", ".1", ".3", ".10", ".*"];
    const VERBS: &[&str] = &[
        "v", "v", "d", "s", "q", "x", "X", "e", "E", "f", "F", "g", "G", "t", "c", "o", "O", "b",
        "U", "T", "%",
    ];
    // No `toTime` here: under a number verb Go prints a time's internal
    // fields, which sonde does not reproduce.
    const ARGUMENTS: &[&str] = &[
        "0",
        "7",
        "-42",
        "255",
        "65",
        "1e100",
        "0.5",
        "-1234.5678",
        "1e-7",
        "123456789.0",
        "0.0",
        "-0.0",
        "$value",
        "\"abc\"",
        "\"héllo wörld\"",
        "\"\"",
        "\"tab\\tq\\\"\"",
        "true",
        "false",
        "nil",
        "$labels",
        "(safeHtml \"<b>\")",
        "(args 1)",
        "(humanize \"NaN\" | printf \"%s\")",
        "(len \"abcd\")",
        "(index \"a\" 0)",
    ];
    let mut random = Random(0x9f1e_77aa);
    let templates: Vec<String> = (0..1000)
        .map(|_| {
            let mut format = String::new();
            for _ in 0..1 + random.below(3) {
                format.push_str(random.pick(&["", "x", " ", "é"]));
                format.push('%');
                for part in [FLAGS, WIDTHS, PRECISIONS, VERBS] {
                    format.push_str(random.pick(part));
                }
            }
            let arguments: Vec<&str> = (0..random.below(4))
                .map(|_| random.pick(ARGUMENTS))
                .collect();
            format!("x{{{{ printf \"{format}\" {} }}}}", arguments.join(" "))
        })
        .collect();
    let corpus: Vec<(&str, &str)> = templates.iter().map(|t| ("big", t.as_str())).collect();
    if let Err(report) = promtool_disagreements(&corpus) {
        panic!("promtool disagrees with sonde's printf:\n{report}");
    }
}

/// Seeded random numbers, as literals and as strings, through the
/// humanize family, toTime and Go's float printing.
#[test]
fn generated_numbers_match_promtool() {
    const FUNCTIONS: &[&str] = &[
        "humanize",
        "humanize1024",
        "humanizeDuration",
        "humanizePercentage",
        "humanizeTimestamp",
        "printf \"%v\"",
        "printf \"%.3f\"",
        "printf \"%e\"",
        "printf \"%.4g\"",
    ];
    const ODD_STRINGS: &[&str] = &[
        "\"\"",
        "\" 1\"",
        "\"0x1p3\"",
        "\"+.5\"",
        "\"1_0\"",
        "\"1__0\"",
        "\"_1\"",
        "\"Inf\"",
        "\"-inf\"",
        "\"+Infinity\"",
        "\"nan\"",
        "\"-NaN\"",
        "\"1e\"",
        "\"1e+\"",
        "\".\"",
        "\"5.\"",
        "\"1e-400\"",
        "\"-1e309\"",
        "\"0.0000001\"",
        "\"1E6\"",
        "\"١\"",
        "\"0b101\"",
        "\"07\"",
    ];
    let mut random = Random(0x4e75_3a1c);
    let templates: Vec<String> = (0..1200)
        .map(|_| {
            let mantissa = random.below(1_000_000) as f64 / 1000.0;
            let exponent = random.below(40) as i32 - 20;
            let sign = if random.below(3) == 0 { "-" } else { "" };
            let number = format!("{sign}{mantissa}e{exponent}");
            let argument = match random.below(6) {
                0 => format!("\"{number}\""),
                1 => random.pick(ODD_STRINGS).to_string(),
                2 => format!("{sign}{}", random.below(100_000)),
                _ => number,
            };
            let function = random.pick(FUNCTIONS);
            format!("x{{{{ {function} {argument} }}}} {{{{ {argument} }}}}")
        })
        .collect();
    let corpus: Vec<(&str, &str)> = templates.iter().map(|t| ("big", t.as_str())).collect();
    if let Err(report) = promtool_disagreements(&corpus) {
        panic!("promtool disagrees with sonde's numbers:\n{report}");
    }
}

/// Seeded random strings and patterns through Prometheus's string and
/// regular expression functions and Go's escapers.
#[test]
fn generated_strings_match_promtool() {
    const ATOMS: &[&str] = &[
        "a",
        "Z",
        "0",
        "9",
        "_",
        "-",
        ".",
        ":",
        " ",
        "\\t",
        "é",
        "ß",
        "İ",
        "ǆ",
        "Σ",
        "ς",
        "日",
        "😀",
        "[",
        "]",
        "::1",
        "'",
        "\\\"",
        "<",
        ">",
        "&",
        "=",
        "/",
        "?",
        "#",
        "%",
        "+",
        "~",
        "\\u00a0",
        "\\u200b",
        "ﬀ",
        "ǅ",
        "ɐ",
        "Ⅻ",
        "١",
        "x.y",
        "host",
        "example.com",
        "80",
    ];
    const FUNCTIONS: &[&str] = &[
        "title",
        "toUpper",
        "toLower",
        "stripPort",
        "stripDomain",
        "html",
        "js",
        "urlquery",
        "graphLink",
        "printf \"%q\"",
        "printf \"%x\"",
        "printf \"%+q\"",
        "printf \"%.3s|%5.2q\"",
        "len",
        "safeHtml",
    ];
    const PATTERNS: &[&str] = &[
        "a",
        ".",
        "\\\\d+",
        "\\\\w",
        "\\\\s",
        "\\\\b",
        "[a-z]+",
        "[^a-z]",
        "(a|é)",
        "^",
        "$",
        "(?i)A",
        "\\\\pL",
        "[[:upper:]]",
        "(x)?y",
        ".*",
        "[\\\\d.]+",
        "\\\\.",
        "(?:a)",
        "a{2}",
        "\\\\S+",
        "[]a]",
        "[a-]",
        "\\\\W",
    ];
    let mut random = Random(0x5731_46a5);
    let text = |random: &mut Random| -> String {
        (0..random.below(6)).map(|_| random.pick(ATOMS)).collect()
    };
    let templates: Vec<String> = (0..1000)
        .map(|_| match random.below(3) {
            0 => {
                let function = random.pick(FUNCTIONS);
                format!("x{{{{ {function} \"{}\" }}}}", text(&mut random))
            }
            1 => format!(
                "x{{{{ match \"{}\" \"{}\" }}}}",
                random.pick(PATTERNS),
                text(&mut random)
            ),
            _ => format!(
                "x{{{{ reReplaceAll \"{}{}\" \"[$0${{1}}$$]\" \"{}\" }}}}",
                random.pick(PATTERNS),
                random.pick(&["", "", "(.)", "+"]),
                text(&mut random)
            ),
        })
        .collect();
    let corpus: Vec<(&str, &str)> = templates.iter().map(|t| ("big", t.as_str())).collect();
    if let Err(report) = promtool_disagreements(&corpus) {
        panic!("promtool disagrees with sonde's strings:\n{report}");
    }
}

/// Seeded random regular expressions, valid or not: Go's verdict, its
/// error text, and what `match` and `reReplaceAll` make of a subject.
#[test]
fn generated_regexps_match_promtool() {
    const ATOMS: &[&str] = &[
        "a",
        "b",
        "é",
        ".",
        "*",
        "+",
        "?",
        "{2}",
        "{1,3}",
        "{,2}",
        "{3,1}",
        "(",
        ")",
        "[",
        "]",
        "^",
        "$",
        "|",
        "\\\\d",
        "\\\\w",
        "\\\\s",
        "\\\\b",
        "\\\\B",
        "-",
        "(?i)",
        "(?:",
        "(?P<g>",
        "[[:alpha:]]",
        "[^[:digit:]]",
        "{",
        "}",
        ",",
        "\\\\.",
        "\\\\pL",
        "\\\\p{Greek}",
        "\\\\x41",
        "\\\\Q",
        "\\\\z",
        "\\\\A",
        "[a-c]",
        "[^a]",
        "0",
        "9",
        " ",
    ];
    const SUBJECTS: &[&str] = &[
        "",
        "a",
        "abc",
        "aab-9 é",
        "B{2}",
        "xyz",
        "Γειά a1",
        "--",
        "a.b,c",
    ];
    let mut random = Random(0x2e9e_5a11);
    let templates: Vec<String> = (0..800)
        .map(|_| {
            let pattern: String = (0..1 + random.below(5))
                .map(|_| random.pick(ATOMS))
                .collect();
            let subject = random.pick(SUBJECTS);
            match random.below(2) {
                0 => format!("x{{{{ match \"{pattern}\" \"{subject}\" }}}}"),
                _ => format!("x{{{{ reReplaceAll \"{pattern}\" \"<$0$1>\" \"{subject}\" }}}}"),
            }
        })
        .collect();
    let corpus: Vec<(&str, &str)> = templates.iter().map(|t| ("big", t.as_str())).collect();
    if let Err(report) = promtool_disagreements(&corpus) {
        panic!("promtool disagrees with sonde's regular expressions:\n{report}");
    }
}

/// A random template body: text with white space and newlines, actions,
/// variables, comments, trim markers and nested control structures.
fn random_body(random: &mut Random, depth: usize) -> String {
    const TEXTS: &[&str] = &["a", " ", "\n", "  b\n", "\t", "é ", ""];
    const VALUES: &[&str] = &[
        "$labels.job",
        "$value",
        ".",
        "$",
        "$x",
        "1",
        "\"s\"",
        "(args 1 \"two\")",
        "$labels",
        "(query \"up\" | len)",
        "(humanize $value)",
        "nil",
        "true",
        "0",
        "\"\"",
        "$labels.nope",
    ];
    let mut body = String::new();
    for _ in 0..1 + random.below(4) {
        let (open, close) = (
            random.pick(&["{{", "{{", "{{- "]),
            random.pick(&["}}", "}}", " -}}"]),
        );
        body.push_str(random.pick(TEXTS));
        let value = random.pick(VALUES);
        match random.below(if depth < 2 { 9 } else { 5 }) {
            0 => body.push_str(&format!("{open} {value} {close}")),
            1 => body.push_str(&format!("{open} $x = {value} {close}")),
            2 => body.push_str(&format!("{open}/* note */{close}")),
            3 => body.push_str(&format!("{open} $y := {value} {close}{{{{ $y }}}}")),
            4 => body.push_str(&format!("{open} template \"t\" {value} {close}")),
            5 => body.push_str(&format!(
                "{open} if {value} {close}{}{{{{ else }}}}{}{{{{ end }}}}",
                random_body(random, depth + 1),
                random_body(random, depth + 1)
            )),
            6 => body.push_str(&format!(
                "{open} with {value} {close}{}{{{{ end }}}}",
                random_body(random, depth + 1)
            )),
            7 => body.push_str(&format!(
                "{open} range $k, $v := {} {close}{}{{{{ if eq (print $k) \"job\" }}}}{{{{ {} }}}}{{{{ end }}}}{{{{ else }}}}none{{{{ end }}}}",
                random.pick(&["$labels", "(args 1 \"two\" 3)", "(query \"up\" | sortByLabel \"job\")", "$externalLabels"]),
                random_body(random, depth + 1),
                random.pick(&["break", "continue"])
            )),
            _ => body.push_str(&format!("{open} block \"b{depth}\" {value} {close}[{}]{{{{ end }}}}", random_body(random, depth + 1))),
        }
    }
    body
}

/// Seeded random templates built from control structures, variables,
/// definitions and trim markers: the same text as Prometheus's, or the
/// same error.
#[test]
fn generated_structures_match_promtool() {
    let mut random = Random(0x51de_0001);
    let templates: Vec<String> = (0..400)
        .map(|_| {
            let body = random_body(&mut random, 0);
            format!("x{{{{ $x := 0 }}}}{{{{ define \"t\" }}}}<{{{{ . }}}}>{{{{ end }}}}{body}|{{{{ $x }}}}")
        })
        .collect();
    let all: Vec<&str> = templates.iter().map(String::as_str).collect();
    let mismatches = parse_disagreements(&all);
    assert!(
        mismatches.is_empty(),
        "parse results differ:\n{}",
        mismatches.join("\n")
    );
    let parsing: Vec<(&str, &str)> = all
        .iter()
        .filter(|t| check("T", t).is_ok())
        .map(|t| ("big", *t))
        .collect();
    assert!(
        parsing.len() * 2 > all.len(),
        "most generated structures parse ({})",
        parsing.len()
    );
    if let Err(report) = promtool_disagreements(&parsing) {
        panic!("promtool disagrees with sonde's expansions:\n{report}");
    }
}

/// Seeded random layouts for `(toTime …).Format` over varied instants.
#[test]
fn generated_time_layouts_match_promtool() {
    const PIECES: &[&str] = &[
        "2006",
        "06",
        "01",
        "1",
        "Jan",
        "January",
        "02",
        "2",
        "_2",
        "__2",
        "002",
        "15",
        "03",
        "3",
        "04",
        "4",
        "05",
        "5",
        "PM",
        "pm",
        "MST",
        "Mon",
        "Monday",
        "-0700",
        "-07:00",
        "-07",
        "Z0700",
        "Z07:00",
        "Z07",
        ".000",
        ".999",
        ",00",
        ".9",
        ".0000000000",
        " ",
        "-",
        ":",
        "T",
        "x",
        "_",
        "0",
        "7",
        "Z",
        "J",
        "M",
        "P",
        ".",
        "_2006",
    ];
    const INSTANTS: &[&str] = &[
        "0",
        "1.5",
        "-1.5",
        "1679000000.123",
        "951782400",
        "-62135596800",
        "253402300799.999",
        "1e9",
        "86399.5",
        "43200",
        "$value",
        "-86400.25",
    ];
    let mut random = Random(0x7133_f0a7);
    let templates: Vec<String> = (0..400)
        .map(|_| {
            let layout: String = (0..1 + random.below(6))
                .map(|_| random.pick(PIECES))
                .collect();
            format!(
                "x{{{{ (toTime {}).Format \"{layout}\" }}}}",
                random.pick(INSTANTS)
            )
        })
        .collect();
    let corpus: Vec<(&str, &str)> = templates
        .iter()
        .map(|t| ("timestamp", t.as_str()))
        .collect();
    if let Err(report) = promtool_disagreements(&corpus) {
        panic!("promtool disagrees with sonde's time layouts:\n{report}");
    }
}
