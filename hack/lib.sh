# shellcheck shell=bash
# Shell functions shared by the scripts in hack/ (sourced, not run). The sourcing script sets
# LOG_NAME (the prefix of its log lines) before it calls any of them.
#
#   logging          log, die, need
#   Debian packages  apt_install, debian_sources, k8s_prepare, k8s_make
#   processes        pid_running, proc_alive, start_proc, stop_proc, free_port
#
# Processes are recorded in a pid file as "PID EXECUTABLE", so that a recycled pid is never
# signalled.

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_NAME:-hack}" -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
need() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is required but not installed"
  done
}

check_version() {
  local what=$1 want=$2 got=$3
  [[ "${got}" == *"${want}"* ]] || die "${what}: expected version ${want}, got: ${got}"
  log "  ${what}: ${got}"
}

# ---------------------------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------------------------

# Installs Debian packages with apt-get (as root), fetching the package lists first when a fresh
# machine has none.
apt_install() {
  [[ "$(id -u)" -eq 0 ]] || die "missing: $*; install them (apt-get install $*) and retry"
  command -v apt-get >/dev/null 2>&1 || die "missing: $*; no apt-get to install them with"
  log "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  local lock=(-o DPkg::Lock::Timeout=300)
  if ! apt-get "${lock[@]}" install -y -q --no-install-recommends "$@" >&2; then
    apt-get "${lock[@]}" update -q >&2 || die "apt-get update failed"
    apt-get "${lock[@]}" install -y -q --no-install-recommends "$@" >&2 ||
      die "apt-get install $* failed"
  fi
}

# Prints deb822 source entries for this Debian release (main, updates, security), taken from the
# mirrors the system's apt is configured with, but with deb-src added. Nothing is written to the
# system's apt configuration.
debian_sources() {
  local codename keyring uri suite scratch
  # shellcheck disable=SC1091 # the system's release file
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [[ -n "${codename}" ]] || die "cannot tell the Debian release from /etc/os-release"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  scratch=$(mktemp -d)
  mkdir -p "${scratch}/partial"
  declare -A suites=()
  while read -r uri suite; do
    case "${suite}" in
      "${codename}" | "${codename}-updates" | "${codename}-security")
        suites["${uri}"]="${suites["${uri}"]:-}${suites["${uri}"]:+ }${suite}"
        ;;
    esac
  done < <(apt-get -o Dir::State::Lists="${scratch}" -o Dir::Cache="${scratch}" update --print-uris 2>/dev/null |
    sed -n "s|^'\([^']*\)/dists/\([^/']*\)/InRelease'.*|\1 \2|p")
  rm -rf "${scratch}"
  [[ ${#suites[@]} -gt 0 ]] || die "found no ${codename} entries in the system's apt sources"
  for uri in "${!suites[@]}"; do
    printf 'Types: deb deb-src\nURIs: %s\nSuites: %s\nComponents: main\n' "${uri}" "${suites["${uri}"]}"
    [[ -f "${keyring}" ]] && printf 'Signed-By: %s\n' "${keyring}"
    printf '\n'
  done
}

# Kubernetes from Debian's source package, built with Debian's Go: K8S_VERSION and GO_PACKAGE
# name what to expect. k8s_prepare BUILD [DEB...] fetches the source, Go and the given extra
# binary packages into BUILD with a private apt configuration, unpacks the .debs into
# BUILD/root and the tree into BUILD/kubernetes; k8s_make BUILD OUT COMPONENT... compiles the
# components (cmd/<name>) and installs them into OUT.
k8s_prepare() {
  local build=$1 apt="$1/apt"
  shift
  mkdir -p "${apt}/sources" "${apt}/lists/partial" "${apt}/cache/archives/partial" \
    "${build}/src" "${build}/debs" "${build}/root"
  debian_sources >"${apt}/sources/debian.sources"
  local apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=${apt}/sources"
    -o "Dir::State::Lists=${apt}/lists"
    -o "Dir::Cache=${apt}/cache"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
    -q
  )
  log "fetching Debian package indices (private apt dirs under ${apt})"
  apt-get "${apt_opts[@]}" update >&2
  log "downloading the kubernetes source package and ${GO_PACKAGE}, reflect2${*:+, $*}"
  (cd "${build}/src" && apt-get "${apt_opts[@]}" source --download-only kubernetes >&2)
  (cd "${build}/debs" && apt-get "${apt_opts[@]}" download \
    "${GO_PACKAGE}-go" "${GO_PACKAGE}-src" golang-github-modern-go-reflect2-dev "$@" >&2)
  local dsc deb
  dsc=$(find "${build}/src" -maxdepth 1 -name 'kubernetes_*.dsc' -print -quit)
  [[ -n "${dsc}" ]] || die "the kubernetes source package was not downloaded"
  [[ "${dsc##*/}" == *"${K8S_VERSION}"* ]] ||
    die "Debian's kubernetes source is ${dsc##*/}, not Kubernetes ${K8S_VERSION}; update hack/"

  log "unpacking Go and the Kubernetes tree"
  for deb in "${build}"/debs/*.deb; do
    dpkg-deb -x "${deb}" "${build}/root"
  done
  local goroot tree="${build}/kubernetes"
  goroot=$(find "${build}/root/usr/lib" -maxdepth 1 -name 'go-*' -type d -print -quit)
  [[ -x "${goroot}/bin/go" ]] || die "Go was not found in the unpacked ${GO_PACKAGE}-go package"
  check_version go "go1.19" "$("${goroot}/bin/go" version)"
  if command -v dpkg-source >/dev/null 2>&1; then
    # Applies Debian's patches too; apt already checked the files against the signed index.
    dpkg-source --no-check -x "${dsc}" "${tree}" >&2
  else
    log "  dpkg-source is not installed: building the upstream tarball without Debian's patches"
    mkdir -p "${tree}"
    tar -xzf "$(find "${build}/src" -maxdepth 1 -name 'kubernetes_*.orig.tar.gz' -print -quit)" \
      -C "${tree}" --strip-components=1
  fi
  [[ -f "${tree}/Makefile" && -d "${tree}/vendor" ]] || die "unexpected kubernetes source layout in ${tree}"
  # The vendored reflect2 1.0.1 crashes under Go >= 1.18 (the server segfaults the first time it
  # rejects an invalid custom resource); Debian's 1.0.2 is a drop-in replacement.
  local reflect2="${tree}/vendor/github.com/modern-go/reflect2"
  rm -rf "${reflect2}"
  cp -a "${build}/root/usr/share/gocode/src/github.com/modern-go/reflect2" "${reflect2}"
  rm -f "${reflect2}/go.mod" "${reflect2}/go.sum"
}

k8s_make() {
  local build=$1 out=$2 goroot arch component what=()
  shift 2
  goroot=$(find "${build}/root/usr/lib" -maxdepth 1 -name 'go-*' -type d -print -quit)
  arch=$(dpkg --print-architecture)
  for component in "$@"; do
    what+=("cmd/${component}")
  done
  log "compiling $* ${K8S_VERSION} (minutes on 2 cores)"
  mkdir -p "${build}/home" "${build}/gocache" "${build}/gopath" "${out}"
  # Kubernetes 1.20 must be built with its own make (generated OpenAPI code).
  env -u GOFLAGS -u GOOS -u GOARCH -u GO111MODULE -u MAKEFLAGS -u MAKELEVEL \
    HOME="${build}/home" \
    GOROOT="${goroot}" \
    GOPATH="${build}/gopath" \
    GOCACHE="${build}/gocache" \
    PATH="${goroot}/bin:${PATH}" \
    GOPROXY=off \
    CGO_ENABLED=0 \
    KUBE_GIT_VERSION="v${K8S_VERSION}" \
    KUBE_GIT_MAJOR="${K8S_VERSION%%.*}" \
    KUBE_GIT_MINOR="$(cut -d. -f2 <<<"${K8S_VERSION}")" \
    KUBE_GIT_TREE_STATE=clean \
    KUBE_BUILD_PLATFORMS="linux/${arch}" \
    GOLDFLAGS="-s -w" \
    make -C "${build}/kubernetes" WHAT="${what[*]}" >&2
  for component in "$@"; do
    install -m 0755 "${build}/kubernetes/_output/local/bin/linux/${arch}/${component}" "${out}/${component}"
    check_version "${component}" "Kubernetes v${K8S_VERSION}" "$("${out}/${component}" --version)"
  done
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

# Succeeds while the pid recorded in a pid file runs (a zombie counts as dead: its parent may not
# reap it for a while). Used right after start, when the child may not have exec'd yet.
pid_running() {
  local pidfile=$1 pid state
  [[ -f "${pidfile}" ]] || return 1
  read -r pid _ <"${pidfile}" || return 1
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/${pid}/stat" 2>/dev/null) || return 1
  [[ -n "${state}" && "${state}" != Z ]]
}

# Succeeds when the process recorded in a pid file is still the one that was started (its
# executable is the recorded binary; a rebuilt binary shows as "(deleted)").
proc_alive() {
  local pidfile=$1 pid bin exe
  [[ -f "${pidfile}" ]] || return 1
  read -r pid bin <"${pidfile}" || return 1
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/${pid}/exe" 2>/dev/null) || return 1
  [[ "${exe% (deleted)}" == "${bin}" ]] || return 1
  pid_running "${pidfile}"
}

# start_proc PIDFILE LOGFILE COMMAND... — in a session of its own (it outlives the caller), output
# appended to LOGFILE, lock fds 7-9 not inherited. PROC_EXE names the executable the process ends
# up running when COMMAND execs another program.
start_proc() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" </dev/null >>"${logfile}" 2>&1 7>&- 8>&- 9>&- &
  # The resolved path, as /proc/PID/exe shows it (symlinks, merged /usr).
  printf '%s %s\n' "$!" "$(readlink -f "${PROC_EXE:-$(command -v "$1")}")" >"${pidfile}"
}

# signal_and_wait SIGNAL PID PIDFILE TENTHS — send SIGNAL, wait up to TENTHS tenths of a
# second for the process to be gone.
signal_and_wait() {
  local signal=$1 pid=$2 pidfile=$3 tenths=$4 i
  kill "-${signal}" "${pid}" 2>/dev/null || true
  for ((i = 0; i < tenths; i++)); do
    proc_alive "${pidfile}" || return 0
    sleep 0.1
  done
}

# stop_proc NAME PIDFILE — SIGTERM, then SIGKILL after 10 s.
stop_proc() {
  local name=$1 pidfile=$2 pid
  if proc_alive "${pidfile}"; then
    read -r pid _ <"${pidfile}"
    log "stopping ${name} (pid ${pid})"
    signal_and_wait TERM "${pid}" "${pidfile}" 100
    if proc_alive "${pidfile}"; then
      log "${name} did not stop within 10 s; killing it"
      signal_and_wait KILL "${pid}" "${pidfile}" 50
    fi
  fi
  rm -f "${pidfile}"
}

# A port nobody listens on, below the kernel's ephemeral range so outgoing connections do not
# take it meanwhile; not one of PORTS_TAKEN (space-separated).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    case " ${PORTS_TAKEN:-} " in *" ${port} "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      printf '%s' "${port}"
      return 0
    fi
  done
}
