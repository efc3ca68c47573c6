# Custos — one entry point.
#   make          build build/custosd, build/custos-agent, build/custosctl
#   make run      install missing packages, build, start MariaDB + custosd + one agent
#   make test     unit + integration tests, normal and sanitizer builds
#   make bench    benchmarks (not part of make test)
#
# Sources are picked up by wildcard: a new .c file in lib/, db/, daemon/, agent/
# or console/ is built without touching this file; tests/unit/test_NAME.c becomes
# build/tests/test_NAME and links against every module library.

BUILD    ?= build
CC       ?= cc
PKGS     := openssl libevent libevent_openssl libevent_pthreads libmariadb libconfig jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# daemon/coa.c uses libfreeradius-radius; nac/compat holds the one header
# Debian's libfreeradius-dev lacks for it (an empty automask.h)
PKG_CFLAGS += -isystem nac/compat
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS   ?= -O2 -g
ALL_CFLAGS = $(CFLAGS) -std=gnu11 $(WARN) -D_GNU_SOURCE -Ilib -Idb -Idaemon -I. $(PKG_CFLAGS) $(EXTRA_CFLAGS)
ALL_LDLIBS = -Wl,--as-needed $(LDLIBS) $(PKG_LIBS) -L/usr/lib/freeradius -Wl,-rpath,/usr/lib/freeradius \
             -lfreeradius-radius -ltalloc -lpthread $(EXTRA_LDFLAGS)
DEPFLAGS  = -MMD -MP

LIB_SRC    := $(wildcard lib/*.c)
DB_SRC     := $(wildcard db/*.c)
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c daemon/*/*.c))
AGENT_SRC  := $(filter-out agent/main.c,$(wildcard agent/*.c))
CTL_SRC    := $(filter-out console/main.c,$(wildcard console/*.c))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
TOOL_SRC   := $(wildcard tests/tools/*.c)
BENCH_SRC  := $(wildcard tests/bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_A    := $(BUILD)/libcustos.a
DAEMON_A := $(BUILD)/libcustosd.a
AGENT_A  := $(BUILD)/libagent.a
CTL_A    := $(BUILD)/libctl.a
ALL_A    := $(DAEMON_A) $(AGENT_A) $(CTL_A) $(LIB_A)

PROGS := $(BUILD)/custosd $(BUILD)/custos-agent $(BUILD)/custosctl
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
BENCHES := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps run stop test unit integration asan bench clean check-config check-layers
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"; $(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIB_A): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(DAEMON_A): $(call obj,$(DAEMON_SRC) $(DB_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(AGENT_A): $(call obj,$(AGENT_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(CTL_A): $(call obj,$(CTL_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(BUILD)/custosd: $(call obj,daemon/main.c) $(DAEMON_A) $(LIB_A)
	@echo "  LD  $@"; $(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDLIBS)
$(BUILD)/custos-agent: $(call obj,agent/main.c) $(AGENT_A) $(LIB_A)
	@echo "  LD  $@"; $(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDLIBS)
$(BUILD)/custosctl: $(call obj,console/main.c) $(CTL_A) $(LIB_A)
	@echo "  LD  $@"; $(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDLIBS)

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(ALL_A)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_CFLAGS) -o $@ $< -Wl,--start-group $(ALL_A) -Wl,--end-group $(ALL_LDLIBS) $(CMOCKA_LIBS)
$(BUILD)/obj/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"; $(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c $< -o $@

# Test helpers (e.g. a wake-up datagram forger) used by integration tests.
$(BUILD)/tests/tools/%: $(call obj,tests/tools/%.c) $(ALL_A)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_CFLAGS) -o $@ $< -Wl,--start-group $(ALL_A) -Wl,--end-group $(ALL_LDLIBS)

units: $(UNITS) $(TOOLS)

# Benchmark programs (make bench runs tests/bench/run.sh).
$(BUILD)/bench/%: $(call obj,tests/bench/%.c) $(ALL_A)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_CFLAGS) -o $@ $< -Wl,--start-group $(ALL_A) -Wl,--end-group $(ALL_LDLIBS)

deps:
	@appliance/bootstrap.sh

# Unit tests: every build/tests/test_* binary; cmocka prints its own summary.
unit: $(PROGS) $(UNITS)
	@tests/run-units.sh $(BUILD)

integration: $(PROGS) $(TOOLS)
	@CUSTOS_BUILD=$(BUILD) tests/integration/run.sh

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" EXTRA_LDFLAGS="-fsanitize=address,undefined" all units

test: deps
	@$(MAKE) --no-print-directory all units
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory nac
	@tests/run-all.sh

# daemon/'s folders are layers: no include may point up (tools/layers.py).
check-layers:
	@python3 tools/layers.py check

run: deps all
	@appliance/run.sh

stop:
	@appliance/run.sh stop

bench: deps all $(BENCHES)
	@tests/bench/run.sh

check-config: all
	$(BUILD)/custosd -t -c etc/custosd.conf
	$(BUILD)/custos-agent -t -c etc/custos-agent.conf

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# The FreeRADIUS module (build/nac/rlm_custos.so) and its header overlay.
include nac/Makefile.inc
