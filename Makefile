# qemu-nested-kvm: top-level entry points.  Each target installs what it
# needs (Debian packages via apt-get, QEMU and meson via a private apt
# configuration under build/) and builds incrementally.

.PHONY: all deps fork stock standalone unit check demo fuzz lab torture torture-pairs torture-modes bench checkpatch clean

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

# The VMX lab on Bochs (scripts/lab-vmx, docs/lab.rst "The VMX lab"):
# KVM's nVMX selftests and the fork on kvm_intel nested=1; not in make
# check, about 2 min per kernel (LAB_VMX_KERNELS, default 6.12).
.PHONY: lab-vmx
lab-vmx: fork standalone
	tests/lab/test_lab_vmx.sh $${LAB_VMX_KERNELS:-6.12}

# Hours: the nested torture under nested-kvm in the VMX lab, 1,000
# migrations in chunks of 100 (TORTURE_VMX_MIGRATIONS, _CHUNK, _JOBS); each chunk
# appends to docs/results/torture-vmx/ (scripts/torture-vmx.sh).
.PHONY: torture-vmx
torture-vmx: fork standalone
	scripts/torture-vmx.sh

# Stock vs fork, interleaved, in the lab; rewrites the Benchmarks section
# of docs/results.rst (docs/bench.rst).
bench: fork stock standalone
	scripts/bench.sh

# Hours: >= 1000 migrations per accelerator and lab kernel
# (docs/results.rst; TORTURE_MIGRATIONS=N for fewer).
torture: fork standalone
	scripts/torture.sh

# Hours: the torture between two lab hosts, every kernel pair and 1, 2
# and 4 guest vCPUs; each run appends to docs/results/torture-pairs/
# (scripts/torture-pairs.sh; docs/results.rst, "Between two hosts").
torture-pairs: fork standalone
	scripts/torture-pairs.sh

# The torture in every way a VM leaves a host (postcopy, multifd, paused,
# savevm) on both lab kernels, nested-kvm and kvm; each run appends to
# docs/results/modes/ (scripts/torture-modes.sh; docs/results.rst).
torture-modes: fork standalone
	scripts/torture-modes.sh

# The fork with ASan+UBSan (build/qemu-system-x86_64-asan, its own build
# directory) and the functional tests under it; any sanitizer report is a
# failure (scripts/check-sanitize.sh, docs/results.rst "Sanitizers").
.PHONY: check-sanitize
check-sanitize: standalone
	scripts/check-sanitize.sh

# The layer check alone, in seconds: its negative controls on synthetic
# trees, then our tree (scripts/check-layers.py; docs/architecture.rst,
# "Tests").  make check runs it as its "layers" stage.
.PHONY: layers
layers:
	/usr/bin/python3 tests/unit/test_check_layers.py
	/usr/bin/python3 scripts/check-layers.py

checkpatch: fork
	git ls-files -co --exclude-standard -- '*.c' '*.h' | \
	    xargs -n1 build/qemu-10.0.13/scripts/checkpatch.pl --no-tree -q -f

clean:
	rm -rf build/standalone build/qemu-build build/fuzz build/check-logs build/lab/runs

# In the lab, the nested torture under nested-kvm with 200 migrations
# broken on purpose (setup, live and device phases: destination killed,
# cancel, link cut; and a refused stream, in turn), each followed by a
# check that the source runs on, idle, and 20 that complete; nothing may
# be lost (docs/results.rst).  LAB_KERNEL=6.12 for the other kernel.
.PHONY: failure-loop
failure-loop: fork standalone
	scripts/lab run --kernel $${LAB_KERNEL:-6.1} --timeout 3000 -- \
	    /usr/bin/python3 tests/lab/torture.py --accel nested-kvm \
	    --migrations 20 --fail-every 10 --max-gap 0.3
