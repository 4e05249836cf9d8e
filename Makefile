# qemu-nested-kvm: top-level entry points.  Each target installs what it
# needs (Debian packages via apt-get, QEMU and meson via a private apt
# configuration under build/) and builds incrementally.

.PHONY: all deps fork stock standalone unit check demo fuzz lab torture bench checkpatch clean

all: fork standalone

deps:
	scripts/install-deps.sh

fork: deps
	scripts/build-fork.sh

stock: deps
	scripts/build-fork.sh --pristine

standalone: deps
	@test -f build/standalone/build.ninja || scripts/meson setup build/standalone .
	scripts/meson compile -C build/standalone

unit: standalone
	scripts/meson test -C build/standalone --no-rebuild

check:
	scripts/check.sh

demo: fork standalone
	scripts/demo.sh

fuzz: deps
	scripts/run-fuzz.sh $${FUZZ_SECONDS:-900}

lab: fork
	tests/lab/test_lab.sh

# Stock vs fork, interleaved, in the lab; rewrites the Benchmarks section
# of docs/results.rst (docs/bench.rst).
bench: fork stock standalone
	scripts/bench.sh

# Hours: >= 1000 migrations per accelerator and lab kernel
# (docs/results.rst; TORTURE_MIGRATIONS=N for fewer).
torture: fork standalone
	scripts/torture.sh

checkpatch: fork
	git ls-files -co --exclude-standard -- '*.c' '*.h' | \
	    xargs -n1 build/qemu-10.0.13/scripts/checkpatch.pl --no-tree -q -f

clean:
	rm -rf build/standalone build/qemu-build build/fuzz build/check-logs build/lab/runs

# 200 migration failures (10 per round: 3 phases x 3 ways, and a refused
# stream), each followed by checks that the source runs on, idle; then a
# retry that must complete (docs/results.rst).  ACCEL=nested-kvm in the lab.
.PHONY: failure-loop
failure-loop: fork standalone
	/usr/bin/python3 tests/functional/test_failure_phases.py \
	    --accel $${ACCEL:-tcg} --rounds $${FAILURE_ROUNDS:-20}
