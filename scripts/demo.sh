#!/usr/bin/env bash
# `npm run demo`: the service's main job on embedded defaults, on this machine.
# Starts `patchd serve` (SQLite queue, in-process patching) and a throwaway
# local registry whose push notifications go to it, pushes a genuinely outdated
# Debian bookworm image, waits for `main-patched`, shows it and patchd's jobs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything below runs on Node.js 24, the supported LTS (installed when the machine's node is older).
export PATH="$(bash scripts/node-lts.sh):$PATH"
bash scripts/install-deps.sh
rootfs=$(bash test/fixtures/build-bookworm.sh)

work=$(mktemp -d "${TMPDIR:-/tmp}/patchd-demo.XXXX")
registry_pid=""
# Keeps the script's own exit status: the registry dying of our SIGTERM is not a failure.
cleanup() {
  local status=$?
  if [ -n "${patchd_pid:-}" ]; then kill "$patchd_pid" 2>/dev/null || true; wait "$patchd_pid" 2>/dev/null || true; fi
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

wait_for() { # URL PID LOG: until URL answers 2xx, or the process died
  for _ in $(seq 1 100); do
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1" && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "no answer from $1" >&2; exit 1
}
free_port() { node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port)
patchd_port=$(free_port)
registry="127.0.0.1:$port"
patchd_url="http://127.0.0.1:$patchd_port"

# patchd serve on embedded defaults: SQLite queue in its data dir, in-process patching.
cat >"$work/patchd.yaml" <<YML
server: { host: 127.0.0.1, port: $patchd_port }
dataDir: $work/patchd-data
registries:
  local:
    url: http://$registry
    webhookSecret: demo-secret
YML
echo "== starting patchd serve on $patchd_url"
# node directly (not npx): the pid we stop must be the server itself.
node bin/patchd.js serve --config "$work/patchd.yaml" >"$work/patchd.log" 2>&1 &
patchd_pid=$!
wait_for "$patchd_url/healthz" "$patchd_pid" "$work/patchd.log"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $registry
notifications:
  endpoints:
    - name: patchd
      url: $patchd_url/webhooks/distribution
      headers: { Authorization: [Bearer demo-secret] }
      timeout: 3s
      threshold: 5
      backoff: 1s
YML
echo "== starting a local registry on $registry"
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
wait_for "http://$registry/v2/" "$registry_pid" "$work/registry.log"

image="$registry/fixtures/bookworm:main"
echo "== pushing $rootfs as $image"
# The image is made by umoci and pushed by skopeo: none of patchd's code is involved.
umoci init --layout "$work/layout"
umoci new --image "$work/layout:main"
umoci raw add-layer --image "$work/layout:main" "$rootfs"
umoci config --image "$work/layout:main" --config.cmd bash \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:main" "docker://$image"

echo "== the registry notifies patchd; waiting for its job to finish (patch, push $image-patched, attach VEX and SBOM)"
job_state() { node -e 'fetch(process.argv[1]).then((r) => r.json()).then((j) => { const job = j.jobs.find((x) => x.tag === "main"); console.log(job?.status ?? "none"); }, () => console.log("none"))' "$patchd_url/jobs"; }
state=none
for _ in $(seq 1 600); do
  state=$(job_state)
  case "$state" in succeeded|skipped|dead) break ;; esac
  kill -0 "$patchd_pid" 2>/dev/null || { cat "$work/patchd.log" >&2; exit 1; }
  sleep 0.5
done
echo "== patchd's jobs ($patchd_url/jobs)"
node -e 'fetch(process.argv[1]).then((r) => r.json()).then((j) => { for (const job of j.jobs) console.log(job.status, job.trigger, `${job.repository}:${job.tag}`, job.digest, job.result?.target ?? job.result?.reason ?? job.lastError ?? ""); })' "$patchd_url/jobs"
[ "$state" = succeeded ] || { echo "demo: the job ended $state" >&2; cat "$work/patchd.log" >&2; exit 1; }

echo "== skopeo inspect docker://$image-patched"
skopeo inspect --tls-verify=false "docker://$image-patched"

echo "== what patchd fixed (job result)"
node -e '
fetch(process.argv[1]).then((r) => r.json()).then((j) => {
  const job = j.jobs.find((x) => x.status === "succeeded");
  for (const p of job?.result?.platforms ?? []) {
    for (const u of p.packages ?? []) console.log(`  ${u.name.padEnd(24)} ${u.from} -> ${u.to}   (${(u.reasons ?? []).join(", ")})`);
    for (const l of p.libraries ?? []) console.log(`  ${l.name.padEnd(24)} ${l.from} -> ${l.to}   (${l.ecosystem}, ${(l.reasons ?? []).join(", ")})`);
    if (p.layer) console.log(`  one patch layer: ${p.layer.digest}, ${(p.layer.size / 1e6).toFixed(1)} MB`);
  }
  const e = job?.result?.evidence;
  if (e?.vex) console.log(`  OpenVEX: ${e.vex.statements} fixed statements, ${e.vex.digest} (${e.vex.via})`);
  for (const b of e?.sbom ?? []) console.log(`  CycloneDX SBOM: ${b.components} components, ${b.digest} (${b.via})`);
});' "$patchd_url/jobs"

echo "== checked independently: dpkg-query on the patched image's own database (skopeo copy + umoci unpack)"
skopeo copy --quiet --src-tls-verify=false "docker://$image-patched" "oci:$work/patched:p"
umoci unpack --image "$work/patched:p" "$work/patched-bundle" >/dev/null
skopeo copy --quiet --src-tls-verify=false "docker://$image" "oci:$work/original:o"
umoci unpack --image "$work/original:o" "$work/original-bundle" >/dev/null
changed=$(diff <(dpkg-query --admindir "$work/original-bundle/rootfs/var/lib/dpkg" -W -f '${Package} ${Version}\n') \
               <(dpkg-query --admindir "$work/patched-bundle/rootfs/var/lib/dpkg" -W -f '${Package} ${Version}\n') | grep '^>' | sed 's/^> /  /' || true)
echo "${changed:-  (no package versions changed)}"
