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

BUILD_DEPS := clang llvm libelf-dev zlib1g-dev pkg-config make
TEST_DEPS := prometheus prometheus-node-exporter prometheus-alertmanager e2fsprogs python3-aiosmtpd openssl podman runc busybox-static

.PHONY: run build static test deps test-deps lint clean

run: build
	$(BIN) run

build: deps
	cargo build $(CARGO_FLAGS)

# The fully static binary: `ldd` calls it "not a dynamic executable".
static: build
	@ldd $(BIN) 2>&1 | grep -q 'not a dynamic executable' || { echo "$(BIN) is not static"; ldd $(BIN); exit 1; }
	@echo "$(BIN): static"

test: deps test-deps lint static
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
