# sonde: `make run` builds and starts sonde, `make test` runs every test.
# Both install what is missing first (Debian/Ubuntu, as root or with sudo).

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TARGET := x86_64-unknown-linux-gnu
# One build configuration for everything: the fully static binary.
export LIBBPF_SYS_LIBRARY_PATH := /usr/lib/x86_64-linux-gnu
export RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=static
CARGO_FLAGS := --release --features static --target $(TARGET)
BIN := $(or $(CARGO_TARGET_DIR),target)/$(TARGET)/release/sonde
# Where `make package` writes the .deb and .rpm; REVISION is the
# packages' own revision (Debian revision, rpm release), for a rebuild of
# one version.
PACKAGE_DIR ?= $(or $(CARGO_TARGET_DIR),target)/package
REVISION ?= 1
PACKAGE_TOOLS := cargo-deb cargo-generate-rpm

BUILD_DEPS := clang llvm libelf-dev zlib1g-dev pkg-config make
TEST_DEPS := nginx chromium prometheus prometheus-node-exporter prometheus-alertmanager e2fsprogs python3-aiosmtpd openssl podman runc busybox-static lintian rpmlint rpm systemtap-sdt-dev pci.ids iproute2 systemd curl python3-grpcio

.PHONY: run build static package package-tools test deps test-deps lint clean

run: build
	$(BIN) run

build: deps
	cargo build $(CARGO_FLAGS)

# The fully static binary: `ldd` calls it "not a dynamic executable".
static: build
	@ldd $(BIN) 2>&1 | grep -q 'not a dynamic executable' || { echo "$(BIN) is not static"; ldd $(BIN); exit 1; }
	@echo "$(BIN): static"

# The .deb and .rpm of the static binary (packaging in Cargo.toml). Not
# stripped: `sonde doctor` attaches a uprobe to a symbol of sonde itself.
package: static package-tools
	mkdir -p $(PACKAGE_DIR)
	gzip -9n < packaging/man/sonde.1 > $(dir $(BIN))sonde.1.gz
	cargo deb --no-build --no-strip --target $(TARGET) --deb-revision $(REVISION) --output $(PACKAGE_DIR)/
	cargo generate-rpm --target $(TARGET) --set-metadata 'release = "$(REVISION)"' --output $(PACKAGE_DIR)/

# Built for this machine, not as sonde is: the static RUSTFLAGS above
# cannot build the proc-macros these tools need.
package-tools:
	@for tool in $(PACKAGE_TOOLS); do command -v $$tool >/dev/null || env -u RUSTFLAGS cargo install --locked $$tool || exit 1; done

test: deps test-deps lint static package-tools
	cargo test $(CARGO_FLAGS)

lint:
	cargo fmt --all -- --check
	cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings

deps:
	@$(call install_missing,$(BUILD_DEPS))
	@command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup (https://rustup.rs), then run make again"; exit 1; }

test-deps:
	@$(call install_missing,$(TEST_DEPS))

clean:
	cargo clean

# Installs the Debian packages of $(1) that are not installed yet.
define install_missing
missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
if [ -n "$$missing" ]; then \
  echo "installing:" $$missing; \
  $(SUDO) apt-get update -qq && \
  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
fi
endef
