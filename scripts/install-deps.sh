#!/usr/bin/env bash
# Installs what PatchVec needs from Debian 12's apt repositories, and only what is missing.
# Safe to run any number of times.
#
#   scripts/install-deps.sh build   compilers, libraries (make build, make demo)
#   scripts/install-deps.sh test    the above plus the test and benchmark tools (make test)
set -euo pipefail

group=${1:-build}
build_packages=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-openmp      # libtorch; OpenBLAS instead of the reference BLAS
  libopencv-dev                         # drawing, PNG encoding, BMP decoding
  libpng-dev libjpeg62-turbo-dev        # PNG and JPEG decoding (src/image)
  libcli11-dev nlohmann-json3-dev       # command line, JSON
  libssl-dev                            # SHA-256 of weights and model files
  libpq-dev                             # PostgreSQL's client library (the pgvector store)
  libcpp-httplib-dev                    # the inspection service's HTTP server
  libcurl4-openssl-dev ca-certificates  # downloading weights (--weights imagenet or a URL)
  zlib1g-dev                            # deflated entries of .pth checkpoints (zip)
  libtomlplusplus-dev libmosquitto-dev  # the station: its TOML file, its MQTT sink,
  libmodbus-dev                         # and its PLC sink (Modbus TCP),
  libaravis-dev libusb-1.0-0-dev        # its GenICam cameras (aravis-0.8.pc requires libusb's)
  python3-dev pybind11-dev python3-numpy  # the Python module (python/, docs/python.md),
  python3-pip python3-setuptools python3-wheel python3-venv  # and pip install from the checkout
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch python3-torchvision     # the golden reference the tests compare against
  python3-sklearn                       # reference AUROC, precision-recall and regions (scipy)
  python3-numpy python3-pil             # fixtures and the benchmarks' images
  python3-pytest                        # the Python module's tests (tests/python)
  debootstrap                           # scripts/pgvector-server.sh builds a Debian 13 root
  postgresql-client                     # psql, for bench/store_load.sh
  wrk                                   # bench/service_load.sh
  chromium nodejs                       # the page's browser test (playwright-core from npm)
  haproxy openssl curl                  # TLS in front of the service (tests/service/tls_haproxy.sh)
  iproute2                              # scripts/cluster.sh: network namespaces and a bridge
  mosquitto mosquitto-clients           # the station's tests: a broker on 127.0.0.1, a subscriber,
  aravis-tools                          # a simulated GigE Vision camera (arv-fake-gv-camera-0.8),
  gir1.2-gst-rtsp-server-1.0 python3-gi # an RTSP server (GStreamer's, from Python) serving
  gstreamer1.0-plugins-good             # MJPEG over RTP (jpegenc, rtpjpegpay, multifilesrc)
  clang libclang-rt-14-dev              # make fuzz and make test-sanitize (libFuzzer, ASan, UBSan)
  clang-format                          # make format, make format-check
  clang-tidy                            # make tidy
)
case "$group" in
  build) packages=("${build_packages[@]}") ;;
  test) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

updated=0
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  updated=1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm comes with some Node.js builds and is a package of its own in Debian's.
if [ "$group" = test ] && ! command -v npm >/dev/null; then
  [ "$updated" = 1 ] || $sudo apt-get update -qq  # a machine whose package lists are empty
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# libtorch links libblas.so.3 / liblapack.so.3. Debian resolves them through alternatives, and the
# reference BLAS is ~80x slower than OpenBLAS for the nearest-neighbour products; the pthread
# build of OpenBLAS fights libtorch's OpenMP threads. Point both at the OpenMP build.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
for lib in libblas.so.3 liblapack.so.3; do
  wanted="/usr/lib/$arch/openblas-openmp/$lib"
  link="$lib-$arch"
  if [ -e "$wanted" ] && [ "$(readlink -f "/etc/alternatives/$link")" != "$(readlink -f "$wanted")" ]; then
    $sudo update-alternatives --set "$link" "$wanted" >/dev/null
  fi
done
