export const usage = `patchd — patch container images without rebuilding them

Usage:
  patchd patch -i REF [-r REPORT] [-t TAG] [--pkg-types os,library] [--library-patch-level L] [--dry-run] ...
  patchd scan -i REF [--format table|json|sarif|cyclonedx] [--advisories PATH] [-r REPORT]
  patchd serve --config FILE
  patchd doctor [--buildkit-addr ADDR | --config FILE]

Every command takes --log-level LEVEL (fatal, error, warn, info, debug, trace, silent;
default $PATCHD_LOG_LEVEL, else info for serve, warn on a terminal and for scan).
Logs are JSON lines on stderr; stdout carries the command's answer.

Registry credentials: $PATCHD_REGISTRY_USERNAME / $PATCHD_REGISTRY_PASSWORD for the
image's registry, else the docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json).

Exit codes: 0 done; 1 failed (the reason and its code on stderr); 2 wrong usage.

Options for patch:
  -i, --image REF        image to patch (tag or digest)
  -r, --report FILE|URL  Trivy JSON or Harbor report; without one (and without OSV data
                         for the OS), every package the image's own repositories have
                         a newer version of is patched
      --advisories PATH  OSV records (directory or all.zip; repeatable; default
                         $PATCHD_ADVISORIES, colon-separated)
      --pkg-types T      os, library or os,library [default: os]
      --library-patch-level L
                         patch, minor or major: the biggest version bump a library may
                         take [default: patch]; needs --pkg-types with library
  -t, --tag TAG          tag (or full reference) for the result [default: <tag>-<suffix>]
      --tag-suffix S     joined to the image's tag with "-", as Copa does (patched and
                         -patched both give <tag>-patched) [default: patched]
      --ignore-errors    skip packages that cannot be patched in-process instead of failing
      --compression C    gzip or zstd: how the patch layer is compressed [default: gzip];
                         zstd needs an OCI image manifest
      --plain-http       speak HTTP, not HTTPS, to the registry (always so for loopback)
      --dry-run          print the plan, push nothing
      --oci-dir DIR      write the result (and its VEX/SBOM referrers) to an OCI image
                         layout in DIR instead of pushing it; base layers are copied
                         from the registry, nothing is written to it
  -p, --push             accepted for Copa: patchd pushes unless --oci-dir is given
      --platform P       only these platforms of an index (os/arch[/variant], comma-
                         separated or repeated); the others are kept as they are
  -f, --format openvex   the VEX format (openvex, the only one) [default: openvex]
  -o, --output FILE      write the OpenVEX document of the verified fixes to FILE
      --timeout D        give up (exit 1, nothing more pushed) after D, a Go duration
                         such as 90s, 10m or 1h30m [default: 5m]
      --progress M       auto, plain (a line per step), tty (a redrawn line), quiet
                         (no progress, errors only) or rawjson (a JSON object per step)
                         [default: auto: tty on a terminal, else the JSON log]
      --debug            --log-level debug
  -w, --working-folder DIR
                         scratch space for downloads and the layer being built
                         [default: $TMPDIR]
  -a, --addr A, --buildkit-addr A
                         BuildKit daemon: unix:///path or tcp://host:port [default:
                         $PATCHD_BUILDKIT_ADDR or $BUILDKIT_HOST]
      --cacert F, --cert F, --key F
                         TLS files for a tcp:// BuildKit daemon
      --executor E       auto (in-process; BuildKit for packages whose maintainer
                         scripts must run), inprocess, or buildkit [default: auto]
      --tooling-image R  for images with no package manager of their own: an image
                         with dnf and rpm (rpm roots) or a Debian image with apt
                         (distroless); BuildKit runs its tools on them
      --go-tooling-image R
                         an image with a Go toolchain at /usr/local/go: BuildKit runs
                         go get (go.mod updates) and Go binary rebuilds in it
      --dotnet-tooling-image R
                         an image with the .NET SDK (and node): BuildKit fetches and
                         checks NuGet packages in it when patchd cannot verify them itself
      --toolchain-patch-level [L]
                         patch (when given alone), minor or major: rebuild Go binaries
                         whose stdlib has findings with the newest Go release that
                         far from theirs; needs --pkg-types with library
      --sign-key FILE    sign the result in cosign's format (sha256-<hex>.sig tag) with
                         this EC P-256 key: PKCS#8 PEM or cosign generate-key-pair's
                         (its password from $PATCHD_SIGNING_PASSWORD)
      --cache-dir DIR    apt index cache [default: $XDG_CACHE_HOME/patchd or ~/.cache/patchd]
      --apt-mirror FROM=TO
                         fetch what the image's apt sources name under FROM from TO
                         (repeatable; Basic credentials from $PATCHD_APT_USERNAME and
                         $PATCHD_APT_PASSWORD); InRelease is still checked with the
                         image's keyring, and its sources files are not changed
      --rpm-mirror FROM=TO|REPOID=TO
                         the same for rpm repositories (baseurl, mirrorlist or metalink
                         under FROM; or one repository's baseurl), for BuildKit installs
      --pypi-index URL   PyPI JSON API mirror or private index [credentials:
                         $PATCHD_PYPI_TOKEN, or $PATCHD_PYPI_USERNAME and _PASSWORD]
      --npm-registry URL npm registry mirror [$PATCHD_NPM_TOKEN, or _USERNAME/_PASSWORD]
      --go-proxy URL     Go module proxy [$PATCHD_GOPROXY_USERNAME and _PASSWORD]
      --nuget-source URL NuGet flat container [$PATCHD_NUGET_USERNAME and _PASSWORD]
  -h, --help             this text
  Copa's --config, -l/--loader, -s/--scanner (other than trivy), --eol-api-url,
  --exit-on-eol, --force-compression and --go-vcs-url are refused with the reason
  (see the README's Copa table).

Options for scan:
  -i, --image REF          image to scan (tag or digest; every platform of an index)
  -r, --report FILE|URL    use a Trivy JSON or Harbor report instead of OSV matching
      --advisories PATH    OSV records: a directory of *.json or an all.zip (repeatable;
                           default $PATCHD_ADVISORIES, colon-separated)
      --format FORMAT      table, json (findings and every package), sarif, or cyclonedx
                           (a CycloneDX 1.6 SBOM) [default: table on a terminal, else json]
      --no-updates         do not ask a Debian image's repositories for newer versions
                           when no advisory data covers its OS
      --plain-http         speak HTTP, not HTTPS, to the registry
      --apt-mirror FROM=TO fetch the image's apt sources under FROM from TO (as patch)

Options for serve:
  -c, --config FILE        the service's YAML config (see the README)

Options for doctor:
      --buildkit-addr A    the BuildKit daemon to check [default: $PATCHD_BUILDKIT_ADDR,
                           $BUILDKIT_HOST, or buildkit.address in --config]
  -c, --config FILE        serve's config, for its buildkit section (address and TLS)
`;
