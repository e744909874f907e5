#!/usr/bin/env bash
# fuzz/run.sh [TARGET...]   (what `make fuzz` runs; default: every target)
# Build the libFuzzer targets (cargo +nightly fuzz, release + debug assertions),
# write the seed corpora, run each target for FUZZ_SECONDS (default 60), and
# print per target: execs, seconds, and whether it crashed. Exits 1 if any did.
#
# Everything lands in the cache, never in git (TCPTRACER_FUZZ_CACHE, default
# ~/.cache/tcptracer-fuzz): btf/ real kernel BTF (fuzz/seed-btf.sh), seeds/<t>/
# generated seeds, corpus/<t>/ the corpus libFuzzer grows (kept between runs),
# artifacts/<t>/ crashing inputs, logs/<t>.log. A crash input goes, once fixed,
# into tests/fuzz_regressions/<t>/ (run by `cargo test --test fuzz_regressions`).
# Reproduce one: fuzz/target/x86_64-unknown-linux-gnu/release/<t> FILE
set -uo pipefail

cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
CACHE=${TCPTRACER_FUZZ_CACHE:-$HOME/.cache/tcptracer-fuzz}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-+nightly}
ALL="btf_parse btf_elf btf_member perf_ring event_row"
TARGETS=${*:-$ALL}
BIN=target/x86_64-unknown-linux-gnu/release
log() { echo "fuzz: $*" >&2; }

if ! cargo "$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz is missing: cargo install cargo-fuzz (needs a nightly toolchain: rustup toolchain install nightly)"
    exit 2
fi
log "building targets"
cargo "$TOOLCHAIN" fuzz build -O -a >&2 || exit 2
cargo "$TOOLCHAIN" build --release --example seeds >&2 || exit 2

[ -d "$CACHE/btf" ] && ls "$CACHE/btf"/*.btf >/dev/null 2>&1 || ./seed-btf.sh "$CACHE/btf" ||
    log "no real BTF: seeding from synthetic blobs only"
rm -rf "$CACHE/seeds"
target/release/examples/seeds "$CACHE/seeds" "$CACHE"/btf/*.btf || exit 2

max_len() {
    case $1 in
        btf_*) echo 200000 ;;
        perf_ring) echo 8192 ;;
        *) echo 512 ;;
    esac
}

declare -A EXECS SECS RESULT
failed=0
for t in $TARGETS; do
    [ -x "$BIN/$t" ] || { log "unknown target $t (have: $ALL)"; exit 2; }
    mkdir -p "$CACHE/corpus/$t" "$CACHE/artifacts/$t" "$CACHE/logs"
    logf=$CACHE/logs/$t.log
    : >"$logf"
    if [ "$t" = btf_parse ] && ls "$CACHE"/btf/*.btf >/dev/null 2>&1; then
        # The full-size kernel BTF once each (too big to mutate quickly).
        log "btf_parse: the full kernel BTF files"
        "$BIN/$t" -rss_limit_mb=4096 -timeout=60 "$CACHE"/btf/*.btf >>"$logf" 2>&1 || {
            RESULT[$t]="CRASH on full BTF (see $logf)"
        }
    fi
    before=$(ls "$CACHE/artifacts/$t" | wc -l)
    log "$t: ${SECONDS_EACH}s"
    start=$(date +%s.%N)
    "$BIN/$t" "$CACHE/corpus/$t" "$CACHE/seeds/$t" "../tests/fuzz_regressions/$t" \
        -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$CACHE/artifacts/$t/" -print_final_stats=1 >>"$logf" 2>&1
    rc=$?
    end=$(date +%s.%N)
    SECS[$t]=$(printf '%.0f' "$(echo "$end - $start" | bc)")
    EXECS[$t]=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logf" | tail -1 | grep -o '[0-9]*$')
    [ -n "${EXECS[$t]}" ] || EXECS[$t]=$(grep -oE '^#[0-9]+' "$logf" | tail -1 | tr -d '#')
    after=$(ls "$CACHE/artifacts/$t" | wc -l)
    if [ -n "${RESULT[$t]:-}" ]; then
        failed=1
    elif [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        art=$(ls -t "$CACHE/artifacts/$t" | head -1)
        RESULT[$t]="CRASH: $CACHE/artifacts/$t/$art (log $logf)"
        failed=1
    else
        RESULT[$t]="ok, no crash (corpus $(ls "$CACHE/corpus/$t" | wc -l) inputs)"
    fi
done

printf '\n%-12s %12s %8s  %s\n' target execs seconds result
for t in $TARGETS; do
    printf '%-12s %12s %8s  %s\n' "$t" "${EXECS[$t]:-?}" "${SECS[$t]}" "${RESULT[$t]}"
done
exit $failed
