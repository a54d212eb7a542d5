# urbd — one entry point.
#   make                      build/urbd, build/urbdctl (warnings are errors)
#   make test                 unit + integration + fuzz (short) + sanitizer run
#   make test-unit | test-integration | test-fuzz | test-san
#   make bench                benchmarks against peers (prints ratios)
#   make SAN=address,undefined    sanitized build (into build/san by default)
#   make CC=clang             clang build;  make WERROR=0 to relax warnings
#   make compile_commands.json    (needs bear)

CC      ?= cc
SAN     ?=
WERROR  ?= 1
OPT     ?= -O2
ifneq ($(SAN),)
BUILD   ?= build/san
else
BUILD   ?= build
endif

PKG_LIBS := liburing libprotobuf-c openssl json-c libisal
PKG_CFLAGS := $(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
# The gRPC C core: only libgrpc and libgpr are needed by C callers.
GRPC_LIBS := -lgrpc -lgpr

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes \
	-Wno-unused-parameter -Wno-missing-field-initializers
ifneq ($(WERROR),0)
WARN += -Werror
endif
CPPFLAGS += -D_GNU_SOURCE -Icommon -Ikmod-free-userspace -I$(BUILD)/gen $(PKG_CFLAGS)
CFLAGS   += -std=gnu11 $(OPT) -g -pthread -MMD -MP $(WARN)
LDFLAGS  += -pthread
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

# ---- sources ---------------------------------------------------------------
PROTOS      := $(wildcard proto/urbd/v1/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
COMMON_SRC  := $(wildcard common/*.c)
DAEMON_SRC  := $(filter-out kmod-free-userspace/main.c,$(wildcard kmod-free-userspace/*.c kmod-free-userspace/nbd/*.c kmod-free-userspace/nvmf/*.c replication/*.c snapshot/*.c))
CLI_SRC     := $(wildcard cli/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC)) $(PROTO_C:.c=.o)
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
LIBURBD    := $(BUILD)/liburbd.a

LIBS := -luring -lprotobuf-c -lssl -lcrypto -ljson-c -lisal $(GRPC_LIBS) -lm

BINS := $(BUILD)/urbd $(BUILD)/urbdctl $(BUILD)/urbd-attach

.PHONY: all clean test test-unit test-integration test-fuzz test-san test-vm test-cluster bench install deps run
# objects made along pattern chains (unit tests) are kept, not rebuilt
.SECONDARY:
all: $(BINS)

# The README's first command: install what is missing (Debian 12, root),
# build, and run the daemon with its embedded default (./var/urbd, NBD on
# 127.0.0.1:10809, a 1 GiB volume "demo").
deps:
	@.ci/install-deps.sh
run: deps
	@$(MAKE) --no-print-directory all
	exec ./$(BUILD)/urbd $(URBD_ARGS)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/gen -Iproto $<

# Generated code is not ours to lint.
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CPPFLAGS) -std=gnu11 $(OPT) -g -pthread $(if $(SAN),-fsanitize=$(SAN)) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBURBD): $(COMMON_OBJ) $(DAEMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/urbd: $(call obj,kmod-free-userspace/main.c) $(LIBURBD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/urbdctl: $(call obj,$(CLI_SRC)) $(LIBURBD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# urbd-attach: node-side attach (csi/attach.h): NVMe/TCP on libnvme
# (libnvme-dev), NBD over raw netlink. --as-needed: it runs in the VM
# guest, which has libnvme but not the daemon's libraries.
ATTACH_NBD_SRC := csi/attach_nbd.c csi/attach_nbd_hs.c csi/attach_nbd_nl.c
ATTACH_SRC := csi/attach_nvme.c $(ATTACH_NBD_SRC)
$(BUILD)/urbd-attach: $(call obj,$(ATTACH_SRC) csi/attach_tool.c) $(LIBURBD)
	$(CC) $(LDFLAGS) -Wl,--as-needed -o $@ $^ -lnvme

$(BUILD)/obj/tests/unit/test_attach.o: CPPFLAGS += -Icsi
$(BUILD)/tests/test_attach: $(BUILD)/obj/tests/unit/test_attach.o $(call obj,$(ATTACH_SRC)) $(LIBURBD)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lnvme -lcmocka
$(BUILD)/obj/tests/unit/test_attach_nbd.o: CPPFLAGS += -Icsi
$(BUILD)/tests/test_attach_nbd: $(BUILD)/obj/tests/unit/test_attach_nbd.o $(call obj,$(ATTACH_NBD_SRC)) $(LIBURBD)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# ---- tests -----------------------------------------------------------------
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBURBD)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

test-unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

test-integration: $(BINS)
	@URBD_BUILD=$(BUILD) tests/integration/run.sh

# Kernel initiators (nbd.ko, later nvme-tcp) in a QEMU guest built from
# Debian packages and cached under build/vm-cache/ (tests/vm/README.md).
test-vm: $(BINS)
	@URBD_BUILD=$(BUILD) tests/vm/run.sh

# Three AZ network namespaces with nftables partitions and injected delay
# (tests/cluster/lib.sh); needs root.
test-cluster: $(BINS) $(BUILD)/urbd-relay
	@URBD_BUILD=$(BUILD) tests/cluster/run.sh

# the harness's delaying TCP relay (no sch_netem here): a tool, not in BINS
$(BUILD)/urbd-relay: tests/cluster/relay.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -g -D_GNU_SOURCE $(WARN) -o $@ $<

# libFuzzer targets: clang only, built from the parser sources they exercise.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_TIME ?= 10
# The sources are compiled once for every target (instrumented, not linked
# with libFuzzer's main), then each target links against them.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -DURBD_FUZZ -Icommon -Ikmod-free-userspace \
	-Ibuild/gen $(PKG_CFLAGS)
FUZZ_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(COMMON_SRC) $(DAEMON_SRC) $(PROTO_C))
build/fuzz/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<
build/fuzz/libfuzzurbd.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c build/fuzz/libfuzzurbd.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< build/fuzz/libfuzzurbd.a \
	  $(LIBS)

test-fuzz: $(FUZZ_BINS)
	@tests/run-fuzz.sh $(FUZZ_TIME) $(FUZZ_BINS)

test-san:
	$(MAKE) SAN=address,undefined BUILD=build/san all test-unit
	URBD_BUILD=build/san URBD_TESTS="$(SAN_TESTS)" tests/integration/run.sh
	URBD_BUILD=build/san URBD_TESTS="$(SAN_CLUSTER_TESTS)" tests/cluster/run.sh
SAN_CLUSTER_TESTS ?= t-repl-hostile t-repl-all-crash t-repl-kill-primary t-repl-kill-secondary t-repl-verify t-repl-membership t-repl-bitmap t-repl-peer-ack t-repl-barrier t-repl-diskless t-repl-blip
SAN_TESTS ?= t-nbd-basic.sh t-nbd-badinput.sh t-nbd-durability.sh t-nbd-idle.sh t-urbdctl.sh

test: all
	@tests/run-all.sh "$(MAKE)"

bench: $(BINS) $(BUILD)/nvmf_load $(BUILD)/urbd-relay
	bench/run.sh $(BUILD)
	bench/run-repl.sh $(BUILD)
	BENCH_STORE=ram bench/run-repl.sh $(BUILD)

# our own NVMe/TCP load generator for bench/run-nvmf.sh (a tool, not in BINS)
$(BUILD)/nvmf_load: bench/nvmf_load.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -g -pthread $(WARN) -o $@ $< -pthread

PREFIX ?= /usr/local
install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

compile_commands.json:
	$(MAKE) clean && bear -- $(MAKE) all

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj build/fuzz/obj -name '*.d' 2>/dev/null)
