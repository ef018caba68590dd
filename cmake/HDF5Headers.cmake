# Wheel mode's HDF5 headers: h5py wheels bundle libhdf5 but no headers, so
# the public headers of the matching HDF5 release come from Debian's source
# package (its orig tarball, checked against the .dsc's SHA-256 pinned below),
# with the H5pubconf.h that a configure-only CMake run of that source writes.
# The result is cached per version under the h5pyvol cache
# (H5PYVOL_CACHE, else ~/.cache/h5pyvol): a later build needs no network.
# Offline, a build without that cache stops with a message naming the file to
# put in place (or HDF5_DIR for the from-source mode).

# Debian source packages: upstream version -> "debian-version sha256" of the
# orig tarball, as each package's .dsc lists it (Checksums-Sha256).
set(_H5PYVOL_DEB_1.14.6 "1.14.6+repack-2" "c18bc47d07f76a5c2cfb70773bfe4152857e48ca4c96e7aef2684c96fa0e6a7c")
set(_H5PYVOL_DEB_1.14.5 "1.14.5+repack-3" "71cdb04c151ef4e8a7f88907adfc4f3b75afd44e96fbd55775e1c9d7c4e7c112")
# Headers for an HDF5 release without a Debian source (2.0.0): the newest 1.14.
set(H5PYVOL_FALLBACK_HEADERS 1.14.6)

function(_h5pyvol_cache_dir out)
  if(DEFINED ENV{H5PYVOL_CACHE})
    set(dir "$ENV{H5PYVOL_CACHE}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(dir "$ENV{XDG_CACHE_HOME}/h5pyvol")
  else()
    set(dir "$ENV{HOME}/.cache/h5pyvol")
  endif()
  set(${out} "${dir}" PARENT_SCOPE)
endfunction()

# h5pyvol_hdf5_headers(VERSION <out-include-dir> <out-headers-version>):
# headers of HDF5 VERSION if Debian has its source, else of the fallback.
function(h5pyvol_hdf5_headers version out_include out_version)
  if(NOT DEFINED _H5PYVOL_DEB_${version})
    set(version ${H5PYVOL_FALLBACK_HEADERS})
  endif()
  list(GET _H5PYVOL_DEB_${version} 0 debver)
  list(GET _H5PYVOL_DEB_${version} 1 sha256)
  string(REGEX REPLACE "-[^-]+$" "" upstream "${debver}")   # 1.14.6+repack
  set(tarball_name "hdf5_${upstream}.orig.tar.gz")
  _h5pyvol_cache_dir(cache)
  set(include "${cache}/hdf5-headers-${debver}/include")
  set(${out_include} "${include}" PARENT_SCOPE)
  set(${out_version} "${version}" PARENT_SCOPE)
  if(EXISTS "${include}/.complete")
    message(STATUS "HDF5 ${version} headers: ${include} (cached)")
    return()
  endif()

  # The tarball: the one scripts/bootstrap.sh fetched, an earlier download,
  # or a new download.
  set(tarball "")
  foreach(candidate "${cache}/src/hdf5-${debver}/${tarball_name}" "${cache}/downloads/${tarball_name}")
    if(EXISTS "${candidate}")
      file(SHA256 "${candidate}" got)
      if(got STREQUAL sha256)
        set(tarball "${candidate}")
        break()
      endif()
    endif()
  endforeach()
  if(NOT tarball)
    if(DEFINED ENV{H5PYVOL_DEBIAN_MIRROR})
      set(mirror "$ENV{H5PYVOL_DEBIAN_MIRROR}")
    else()
      set(mirror "http://deb.debian.org/debian")
    endif()
    set(url "${mirror}/pool/main/h/hdf5/${tarball_name}")
    set(tarball "${cache}/downloads/${tarball_name}")
    message(STATUS "Downloading the HDF5 ${version} headers' source from Debian: ${url} (37 MB)")
    file(DOWNLOAD "${url}" "${tarball}.part" STATUS status TIMEOUT 600)
    list(GET status 0 code)
    list(GET status 1 why)
    if(code EQUAL 0)
      file(SHA256 "${tarball}.part" got)
      if(NOT got STREQUAL sha256)
        set(code 1)
        set(why "its SHA-256 is ${got}, not Debian's ${sha256}")
      endif()
    endif()
    if(NOT code EQUAL 0)
      file(REMOVE "${tarball}.part")
      message(FATAL_ERROR
        "Wheel mode needs the headers of HDF5 ${version}, from Debian's source package, and the "
        "download failed (${why}): ${url}\n"
        "Offline, put that file (SHA-256 ${sha256}) at ${tarball}, or set HDF5_DIR to an installed "
        "HDF5 >= 1.14 (the from-source mode; scripts/bootstrap.sh builds one).")
    endif()
    file(RENAME "${tarball}.part" "${tarball}")
  endif()

  # Only what a configure of the library needs; tools, tests and examples are skipped.
  set(work "${cache}/hdf5-headers-${debver}.tmp")
  file(REMOVE_RECURSE "${work}")
  message(STATUS "Extracting and configuring HDF5 ${version} for its headers (about 30 s)")
  set(top "hdf5-${upstream}")
  file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${work}"
       PATTERNS "${top}/*.cmake" "${top}/CMakeLists.txt" "${top}/CMakePresets.json" "${top}/COPYING*"
                "${top}/config" "${top}/src" "${top}/hl/src" "${top}/bin" "${top}/utils" "${top}/README.md"
                "${top}/release_docs")
  set(generator_args)
  find_program(_h5pyvol_ninja ninja)
  if(_h5pyvol_ninja)
    set(generator_args -G Ninja -DCMAKE_MAKE_PROGRAM=${_h5pyvol_ninja})
  endif()
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -S "${work}/${top}" -B "${work}/build" ${generator_args}
            -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
            -DBUILD_TESTING=OFF -DBUILD_STATIC_LIBS=OFF -DHDF5_BUILD_TOOLS=OFF -DHDF5_BUILD_UTILS=OFF
            -DHDF5_BUILD_HL_LIB=OFF -DHDF5_BUILD_EXAMPLES=OFF -DHDF5_BUILD_FORTRAN=OFF -DHDF5_BUILD_CPP_LIB=OFF
            -DHDF5_BUILD_JAVA=OFF -DHDF5_BUILD_DOC=OFF -DHDF5_ENABLE_Z_LIB_SUPPORT=OFF -DHDF5_ENABLE_SZIP_SUPPORT=OFF
            -DHDF5_ALLOW_EXTERNAL_SUPPORT=NO
    RESULT_VARIABLE rc OUTPUT_FILE "${work}/configure.log" ERROR_FILE "${work}/configure.log")
  if(NOT rc EQUAL 0 OR NOT EXISTS "${work}/build/src/H5pubconf.h")
    message(FATAL_ERROR "Configuring HDF5 ${version}'s source for its headers failed; see ${work}/configure.log")
  endif()

  # The installed header set: public and developer headers of the library and
  # the high-level library, the generated H5pubconf.h, and HDF5's license.
  file(MAKE_DIRECTORY "${work}/include")
  file(GLOB headers "${work}/${top}/src/*.h" "${work}/${top}/src/H5FDsubfiling/*.h" "${work}/${top}/hl/src/*.h")
  foreach(h IN LISTS headers)
    get_filename_component(name "${h}" NAME)
    if(NOT name MATCHES "(pkg|private|private2|module|_priv)\\.h$|^H5E(defin|init|term)\\.h$")
      file(COPY "${h}" DESTINATION "${work}/include")
    endif()
  endforeach()
  file(COPY "${work}/build/src/H5pubconf.h" DESTINATION "${work}/include")
  file(COPY "${work}/${top}/COPYING" DESTINATION "${work}/include")
  file(RENAME "${work}/include/COPYING" "${work}/include/COPYING.HDF5")
  file(TOUCH "${work}/include/.complete")
  file(REMOVE_RECURSE "${cache}/hdf5-headers-${debver}")
  file(MAKE_DIRECTORY "${cache}/hdf5-headers-${debver}")
  file(RENAME "${work}/include" "${include}")
  file(REMOVE_RECURSE "${work}")
  message(STATUS "HDF5 ${version} headers: ${include}")
endfunction()
