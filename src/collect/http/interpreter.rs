//! The program an interpreter runs, from its command line, so a service
//! without a name of its own (no `OTEL_SERVICE_NAME`, unit or container)
//! is called by its script, module or jar, not `python3` or `java`:
//!
//! - Python (`python3`, `python3.12`, `pypy3`): `python3 -u app/server.py`
//!   is `server`, `python3 -m http.server` is `http.server`;
//! - Node.js (`node`, `nodejs`): `node --enable-source-maps dist/main.js`
//!   is `main`;
//! - Ruby, Perl, PHP's command line: the script, as Python's;
//! - Java: `java -Xmx1g -jar /opt/shop/cart-1.2.jar` is `cart-1.2`,
//!   `java -cp app.jar com.example.Shop` is `com.example.Shop`,
//!   `java -m shop/com.example.Shop` is `shop`.
//!
//! Code given on the command line (`-c`, `-e`) or read from stdin names
//! nothing: the executable's name stays.

use std::path::Path;

/// Which interpreter an executable's file name is, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interpreter {
    Python,
    Node,
    Ruby,
    Perl,
    Php,
    Java,
}

impl Interpreter {
    fn of(exe: &str) -> Option<Interpreter> {
        // python3.12, ruby3.1, perl5.36: the version after the name.
        let name = exe.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        Some(match name {
            "python" | "pypy" => Interpreter::Python,
            "node" | "nodejs" => Interpreter::Node,
            "ruby" => Interpreter::Ruby,
            "perl" => Interpreter::Perl,
            "php" => Interpreter::Php,
            "java" => Interpreter::Java,
            _ => return None,
        })
    }

    /// Options whose value is the next argument (`-X dev`, `--require m`).
    fn takes_value(self, option: &str) -> bool {
        let options: &[&str] = match self {
            Interpreter::Python => &["-W", "-X", "--check-hash-based-pycs"],
            Interpreter::Node => &[
                "-r",
                "--require",
                "--import",
                "--loader",
                "--conditions",
                "-C",
            ],
            Interpreter::Ruby => &["-I", "-r", "-E", "-C"],
            Interpreter::Perl => &["-I", "-M", "-m"],
            Interpreter::Php => &["-d", "-c", "-z", "-S", "-t"],
            Interpreter::Java => &[
                "-cp",
                "-classpath",
                "--class-path",
                "-p",
                "--module-path",
                "--add-modules",
                "--add-opens",
                "--add-exports",
                "--add-reads",
                "--patch-module",
                "--limit-modules",
                "--upgrade-module-path",
                "-javaagent",
            ],
        };
        options.contains(&option)
    }

    /// Options after which the command line holds code, not a program.
    fn runs_inline(self, option: &str) -> bool {
        match self {
            Interpreter::Python => option == "-c",
            Interpreter::Node => ["-e", "--eval", "-p", "--print"].contains(&option),
            Interpreter::Ruby | Interpreter::Perl => option == "-e" || option == "-E",
            Interpreter::Php => option == "-r",
            Interpreter::Java => false,
        }
    }
}

/// The name of the program `exe` (the executable's file name) runs, from
/// its NUL-separated command line; None when it is no interpreter or names
/// no program.
pub fn program(exe: &str, cmdline: &[u8]) -> Option<String> {
    let interpreter = Interpreter::of(exe)?;
    let mut args = cmdline
        .split(|&b| b == 0)
        .skip(1)
        .map(|arg| String::from_utf8_lossy(arg).into_owned());
    while let Some(arg) = args.next() {
        if interpreter.runs_inline(&arg) || arg == "-" {
            return None;
        }
        match (interpreter, arg.as_str()) {
            (Interpreter::Python, "-m") => return args.next(),
            (Interpreter::Java, "-jar") => return args.next().map(|jar| stem(&jar)),
            (Interpreter::Java, "-m" | "--module") => {
                let module = args.next()?;
                return Some(module.split('/').next().unwrap_or(&module).to_string());
            }
            (Interpreter::Java, _) if !arg.starts_with('-') => return Some(arg),
            _ if interpreter.takes_value(&arg) => {
                args.next();
            }
            _ if arg == "--" => return args.next().map(|script| stem(&script)),
            _ if !arg.starts_with('-') => return Some(stem(&arg)),
            _ => {}
        }
    }
    None
}

/// A script's or jar's file name without its extension.
fn stem(path: &str) -> String {
    let path = Path::new(path);
    path.file_stem()
        .or(path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::program;

    fn name(cmdline: &str) -> Option<String> {
        let exe = cmdline.split(' ').next().unwrap();
        let exe = exe.rsplit('/').next().unwrap();
        program(exe, cmdline.replace(' ', "\0").as_bytes())
    }

    #[test]
    fn names_the_script_module_or_jar() {
        let cases = [
            ("/usr/bin/python3 -u app/server.py 8080", Some("server")),
            ("python3.12 -X dev -W ignore shop.py", Some("shop")),
            ("python3 -m http.server 8000", Some("http.server")),
            (
                "node --enable-source-maps --require ./otel.js dist/main.js",
                Some("main"),
            ),
            ("ruby -I lib bin/puma", Some("puma")),
            (
                "php -d memory_limit=1G -S 0:8000 router.php",
                Some("router"),
            ),
            (
                "java -Xmx1g -jar /opt/shop/cart-1.2.jar --port 80",
                Some("cart-1.2"),
            ),
            (
                "java -cp app.jar:lib/* com.example.Shop",
                Some("com.example.Shop"),
            ),
            (
                "java --module-path mods -m shop/com.example.Shop",
                Some("shop"),
            ),
            ("python3 -c import_this", None),
            ("node -e x", None),
            ("python3", None),
            ("python3 -", None),
            ("nginx -g daemon_off;", None),
            ("pythonista server.py", None),
        ];
        for (cmdline, want) in cases {
            assert_eq!(name(cmdline).as_deref(), want, "{cmdline}");
        }
    }
}
