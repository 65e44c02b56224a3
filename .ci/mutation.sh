#!/usr/bin/env bash
# Mutation testing of the pure modules, each against its own unit tests.
#
#   bash .ci/mutation.sh [module ...]     # default: every pure module
#
# A module NAME is bridge/NAME.py, tested by tests/test_NAME.py alone (or by
# the in-process test files TESTS names for it): a mutant counts as killed
# only if those tests notice it. Each
# module runs afresh in mutants/NAME/ (a copy of bridge/ and tests/ with
# [tool.mutmut] of pyproject.toml narrowed to it), so no result comes from an
# older run. Prints killed/total per module, the survivors listed in
# EQUIVALENT, the diff of every other mutant not killed, and exits 1 if one
# of those is in a GATED module. docs/testing.md has the figures and says why
# each listed mutant cannot change behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."

PURE=(signature status_rules delivery_plan delivery_outcome oauth1 confirmation payload backoff url_path mysql_url mysql_checks)
# No mutant may survive in these but the EQUIVALENT ones.
GATED=(signature status_rules delivery_plan delivery_outcome oauth1 confirmation payload backoff url_path mysql_url mysql_checks)
# The I/O modules of the money path, run on demand (each takes minutes):
# their in-process tests, never the daemon-process ones.
declare -A TESTS=(
    [delivery]="tests/test_delivery_worker.py tests/test_delivery_trust.py tests/test_fault_bodies.py"
    [delivery_stages]="tests/test_delivery_worker.py tests/test_delivery_trust.py tests/test_delivery_resume.py tests/test_fault_bodies.py"
    [reconcile]="tests/test_reconcile.py tests/test_background.py"
    [background]="tests/test_background.py"
    [callbacks]="tests/test_callbacks.py"
    [log_context]="tests/test_log_context.py"
    [storage/group_commit]="tests/test_group_commit.py"
    [storage/sqlite]="tests/test_storage.py tests/test_delivery_queue.py tests/test_retention.py"
    [storage/sqlite_ingest]="tests/test_storage.py"
    [storage/sqlite_queue]="tests/test_delivery_queue.py"
    [storage/mysql]="tests/test_storage.py tests/test_mysql_storage.py tests/test_retention.py"
    [storage/mysql_ingest]="tests/test_storage.py tests/test_mysql_ingest.py tests/test_mysql_storage.py"
    [storage/mysql_queue]="tests/test_delivery_queue.py tests/test_mysql_storage.py"
    [storage/mysql_connection]="tests/test_storage.py tests/test_mysql_storage.py"
)
# Mutants that cannot change behaviour: "module|the mutated line", or
# "module:x_FUNCTION|the mutated line" where the same line is elsewhere too.
# Any edit to such a line makes a new mutant, which must be looked at again.
EQUIVALENT=(
    'signature|return base64.b64encode(_digest(key, json_canonical(body))).decode("ASCII")'
    'delivery_plan|equal = None'
    'oauth1|return quote(value, safe="XX~XX")'
    'confirmation|if claimed in _STAGE and _stage(None) > _stage(claimed):'
    'payload|for item in error.errors(include_input=False):'
    'payload|for item in error.errors(include_url=False, ):'
    'payload|for item in error.errors(include_url=True, include_input=False):'
    'payload|for item in error.errors(include_url=False, include_input=True):'
    'url_path|return quote(value, safe="XXXX", errors="surrogatepass")'
    'mysql_checks|if parsed.number[:3] < minimum:'
    'mysql_checks|return "transaction_isolation" if parsed.number[:3] >= renamed else "tx_isolation"'
    'mysql_checks|value = value.decode("ASCII", errors="replace")'
    'delivery_stages|Plan.from_json(job.decision) if job.progress is Progress.ACTING or job.decision else None'
    'delivery_stages:x_attempt_delivery|return after_plan(plan, None, order.status)'
    'delivery_stages:x_finish_saved_plan|return after_plan(plan, job.status, None)'
    'delivery_stages|callback = parse_callback(payload or b"XXXX")'
    'reconcile|self._started = None'
    'storage/mysql|await migrate(pool, None)'
    'storage/mysql|check_version(version, migrate=None)'
    'storage/mysql|await self._submit(None)'
    'storage/mysql|"insert into health_probe (id, checked_at) values (1, %s)"'
    'storage/mysql|" on duplicate key update checked_at = values(checked_at)",'
    'storage/mysql|" ON DUPLICATE KEY UPDATE CHECKED_AT = VALUES(CHECKED_AT)",'
    'storage/mysql|where, parameters = ("where e.store = %s", [store]) if store else ("", [])'
    'storage/mysql|return int(await self._scalar("select count(*) from events"))'
    'storage/mysql|"select id, payload, facts from events"'
    'storage/mysql|" where redacted_at is null and received_at < %s"'
    'storage/mysql|" order by received_at limit %s for update skip locked",'
    'storage/mysql|"update events set payload = %s, facts = %s, redacted_at = %s where id = %s",'
    'storage/mysql|"update deliveries set decision = null"'
    'storage/mysql|"insert into task_leases (task, holder, held_until) values (%s, %s, %s)"'
    'storage/mysql|" on duplicate key update task = task",'
    'storage/mysql|" ON DUPLICATE KEY UPDATE TASK = TASK",'
    'storage/mysql|(task, self.node, now - seconds),'
    'storage/mysql|"update task_leases set holder = %s, held_until = %s"'
    'storage/mysql|" where task = %s and (holder = %s or held_until <= %s)",'
    'storage/mysql|await cursor.execute("select holder from task_leases where task = %s", (task,))'
    'storage/mysql|"delete from task_leases where task = %s and holder = %s", (task, self.node)'
    'storage/mysql_queue|if limit < 0:'
    'storage/mysql_queue|"update deliveries set lease_until = %s, attempts = attempts + 1, updated_at = %s"'
    'storage/mysql_queue|"select delivery_id from applied_payments"'
    'storage/mysql_queue|" where store = %s and cryptum_order_id = %s and status = %s",'
    'storage/mysql_queue|"update deliveries set progress = %s, decision = %s, updated_at = %s where id = %s",'
    'storage/mysql_queue|"update deliveries set next_attempt_at = %s, last_error = %s, lease_until = null,"'
    'storage/mysql_queue|" updated_at = %s where id = %s",'
    'storage/mysql_queue|"select min(next_attempt_at) from deliveries where state = '\''pending'\''"'
    'storage/mysql_queue|where = "state = %(state)s" + (" and id = %(id)s" if delivery_id is not None else "")'
    'storage/mysql_queue|"event_id = %(event)s and state != '\''pending'\''", {"event": event_id}, now'
    'storage/mysql_queue|"event_id = %(event)s and state in ('\''done'\'', '\''skipped'\'')", {"event": event_id}, now'
    'storage/mysql_queue|where = f"WHERE {'\'' and '\''.join(conditions)}" if conditions else ""'
    'storage/mysql_queue|"select min(created_at) from deliveries where state = '\''pending'\''"'
    'storage/mysql_queue|rows = await self._rows("select state, count(*) from deliveries group by state")'
    'storage/mysql_queue|" group by state",'
    'storage/mysql_queue|" GROUP BY STATE",'
    'storage/mysql_ingest|"select store, cryptum_order_id, status, body_sha256, id from events"'
    'storage/mysql_ingest|"insert into deliveries (event_id, store, woo_order_id, next_attempt_at, age_from,"'
    'storage/mysql_ingest|" CREATED_AT, UPDATED_AT)"'
    'storage/mysql_ingest|" select id, store, woo_order_id, received_at, received_at, received_at, received_at"'
    'storage/mysql_ingest|" SELECT ID, STORE, WOO_ORDER_ID, RECEIVED_AT, RECEIVED_AT, RECEIVED_AT, RECEIVED_AT"'
    'storage/mysql_connection|for attempt in range(1, TRANSACTION_ATTEMPTS + 2):'
    'storage/mysql_connection|raise AssertionError(None)'
    'storage/mysql_connection|raise AssertionError("XXunreachableXX")'
    'storage/mysql_connection|raise AssertionError("UNREACHABLE")'
)

if [ "$#" -gt 0 ]; then
    modules=("$@")
else
    modules=("${PURE[@]}")
fi
tests_of() {
    echo "${TESTS[$1]:-tests/test_$1.py}"
}
for module in "${modules[@]}"; do
    for test_file in $(tests_of "$module"); do
        if [ ! -f "bridge/$module.py" ] || [ ! -f "$test_file" ]; then
            echo "mutation: no bridge/$module.py with $test_file" >&2
            exit 2
        fi
    done
done
if ! command -v mutmut >/dev/null 2>&1; then
    echo "mutation: mutmut is not installed: pip install -e '.[test,mutation]'" >&2
    exit 2
fi

# pyproject.toml with its [tool.mutmut] narrowed to one module and its tests.
narrowed_pyproject() {
    python - "$@" <<'PY'
import json
import re
import sys
import tomllib
from pathlib import Path

module, *tests = sys.argv[1:]
text = Path("pyproject.toml").read_text(encoding="utf-8")
settings = tomllib.loads(text)["tool"]["mutmut"]
settings["only_mutate"] = [f"bridge/{module}.py"]
settings["pytest_add_cli_args_test_selection"] = tests
# Every run starts from an empty directory: there is no cache to invalidate.
settings["use_git_change_detection"] = False
# The section runs from its header to the next table header, or the end.
text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
print(text.rstrip() + "\n\n[tool.mutmut]\n" + "\n".join(lines))
PY
}

is_gated() {
    local gated
    for gated in "${GATED[@]}"; do
        [ "$gated" = "$1" ] && return 0
    done
    return 1
}

# The mutated line(s) of a mutant's diff, trimmed and joined.
mutated_line() {
    sed -n '/^+++/d; s/^+[[:space:]]*//p' | sed 's/[[:space:]]*$//' | paste -sd ' ' -
}

# The MySQL engine's tests need a MariaDB server: one for the whole run
# (tests/mariadb.py), since mutmut starts a new test session per mutant and
# each would otherwise start a server of its own.
for module in "${modules[@]}"; do
    case "$module" in
    storage/mysql*)
        mariadb_dir=$(mktemp -d)
        python tests/mariadb.py start "$mariadb_dir"
        export BRIDGE_TEST_MARIADB_DIR="$mariadb_dir"
        trap 'python tests/mariadb.py stop "$mariadb_dir"' EXIT
        break
        ;;
    esac
done

started_all=$SECONDS
failed=()
table=$(printf '%-22s %7s %6s %11s %9s %6s %8s' \
    module killed total equivalent survived other seconds)
echo "$table"
survivors=""
equivalents=""
for module in "${modules[@]}"; do
    work="mutants/$module"
    rm -rf "$work"
    mkdir -p "$work"
    cp -R bridge bridge_simulators tests "$work/"
    find "$work" -name __pycache__ -prune -exec rm -rf {} +
    # shellcheck disable=SC2046 # the file list splits on purpose
    narrowed_pyproject "$module" $(tests_of "$module") >"$work/pyproject.toml"

    started=$SECONDS
    if ! (cd "$work" && mutmut run >run.log 2>&1); then
        tail -n 40 "$work/run.log" >&2
        echo "mutation: mutmut failed on $module (log: $work/run.log)" >&2
        exit 1
    fi
    elapsed=$((SECONDS - started))
    # Lines are "    bridge.MODULE.x_FUNCTION__mutmut_N: STATUS".
    (cd "$work" && mutmut results --all true) >"$work/results.txt"

    killed=0 total=0 equivalent=0 survived=0 other=0
    while IFS= read -r line; do
        name=${line%%: *}
        name=${name#"${name%%[![:space:]]*}"}
        result=${line##*: }
        total=$((total + 1))
        if [ "$result" = killed ] || [ "$result" = timeout ]; then
            killed=$((killed + 1))
            continue
        fi
        diff=$(cd "$work" && mutmut show "$name")
        if [ "$result" = survived ]; then
            mutated=$(mutated_line <<<"$diff")
            # The mutated function: "x_NAME" or "xǁCLASSǁNAME" before "__mutmut_N".
            function=${name##*.}
            function=${function%__mutmut_*}
            listed=""
            for entry in "${EQUIVALENT[@]}"; do
                if [ "$entry" = "$module|$mutated" ] || [ "$entry" = "$module:$function|$mutated" ]; then
                    listed=yes
                fi
            done
            if [ -n "$listed" ]; then
                equivalent=$((equivalent + 1))
                equivalents+="  $name: $mutated"$'\n'
                continue
            fi
            survived=$((survived + 1))
        else
            other=$((other + 1))
        fi
        survivors+=$'\n'"$diff"$'\n'
        if is_gated "$module" && [[ " ${failed[*]} " != *" $module "* ]]; then
            failed+=("$module")
        fi
    done <"$work/results.txt"
    if [ "$total" -eq 0 ]; then
        echo "mutation: no mutant was made of bridge/$module.py" >&2
        failed+=("$module")
    fi
    row=$(printf '%-22s %7s %6s %11s %9s %6s %8s' \
        "$module" "$killed" "$total" "$equivalent" "$survived" "$other" "$elapsed")
    echo "$row"
    table+=$'\n'"$row"
done

if [ -n "$equivalents" ]; then
    printf '\nSurvivors that cannot change behaviour (docs/testing.md says why):\n%s' \
        "$equivalents"
fi
if [ -n "$survivors" ]; then
    printf '\nMutants not killed:\n%s' "$survivors"
fi
printf '\n%s\n(mutmut %s, %s s in all)\n' "$table" \
    "$(mutmut --version | awk '{ print $NF }')" "$((SECONDS - started_all))"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "mutation: mutants not killed in ${failed[*]} (gated); see above" >&2
    exit 1
fi
