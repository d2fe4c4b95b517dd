#!/usr/bin/env bash
# Build deploy/Dockerfile's image with buildah, then load its code location in it as its pod would.
#
#   deploy/build_image.sh [PROJECT_DIR] [LOCATION_MODULE] [TAG]
#
# Defaults: this repository, the shipped finance desk, localhost/foureyes-finance-desk:dev.
# PYTHON_IMAGE names the base image (default python:3.11-slim-bookworm, from a registry). On a
# machine that reaches no image registry, PYTHON_IMAGE=debian makes a base here from Debian's
# own packages instead (mmdebstrap: python3, python3-venv, python3-pip, ca-certificates, passwd).
# WHEELHOUSE=DIR builds without an index: the wheels of every pinned dependency are downloaded
# here into DIR (pip download, with this machine's own pip settings), put in the wheels/ folder of
# a copy of the project, and installed from there alone (PIP_NO_INDEX=1).
# Needs buildah (and mmdebstrap for the Debian base) and the package index; as root it uses
# buildah's chroot isolation and vfs storage unless BUILDAH_ISOLATION / STORAGE_DRIVER say otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "${1:-$here/..}" && pwd)
module=${2:-foureyes.examples.finance_desk.definitions}
tag=${3:-localhost/foureyes-finance-desk:dev}
base=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

if [ "$base" = debian ]; then
  base=localhost/foureyes-python-base:bookworm
  if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    rootfs=$(mktemp -d)/rootfs.tar
    mmdebstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
      bookworm "$rootfs"
    ctr=$(buildah from scratch)
    buildah add "$ctr" "$rootfs" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    buildah commit -q "$ctr" "$base" >/dev/null
    buildah rm "$ctr" >/dev/null
    rm -rf "$(dirname "$rootfs")"
  fi
fi

constraints=foureyes-constraints.txt
own=()
if [ ! -f "$project/$constraints" ]; then  # foureyes' own root: the project is foureyes itself
  constraints=constraints.txt
  own=(--build-arg FOUREYES_REQUIREMENT= --build-arg "PROJECT_EXTRAS=[k8s]")
fi
offline=()
if [ -n "${WHEELHOUSE:-}" ]; then
  mkdir -p "$WHEELHOUSE"
  python3 -m pip download --quiet --dest "$WHEELHOUSE" --constraint "$project/$constraints" \
    "$project[k8s]" "setuptools>=75"
  copy=$(mktemp -d)/project
  trap 'rm -rf "$(dirname "$copy")"' EXIT
  tar -C "$project" --exclude=.git --exclude=.venv -cf - . | (mkdir -p "$copy" && tar -C "$copy" -xf -)
  mkdir -p "$copy/wheels" && cp "$WHEELHOUSE"/*.whl "$copy/wheels/"
  project=$copy
  offline=(--build-arg PIP_NO_INDEX=1)
fi
start=$(date +%s)
buildah bud --layers -f "$here/Dockerfile" --ignorefile "$here/.dockerignore" \
  --build-arg PYTHON_IMAGE="$base" --build-arg CONSTRAINTS="$constraints" \
  --build-arg LOCATION_MODULE="$module" "${own[@]}" "${offline[@]}" -t "$tag" "$project"
echo "built $tag in $(($(date +%s) - start)) s"

# The image as its pod runs it: its own user and environment, FOUREYES_EXECUTOR=k8s as the Helm
# values set it; the location must load, its executor from dagster-k8s.
ctr=$(buildah from "$tag")
trap 'buildah rm "$ctr" >/dev/null; rm -rf "${copy:+$(dirname "$copy")}"' EXIT
buildah run --env FOUREYES_EXECUTOR=k8s "$ctr" -- sh -c \
  'echo "uid $(id -u)"; dagster definitions validate -m "$LOCATION_MODULE" && python -c "import dagster_k8s, foureyes; print(\"dagster-k8s\", dagster_k8s.__version__)"'
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
