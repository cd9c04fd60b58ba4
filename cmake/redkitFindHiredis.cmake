# Finds hiredis and provides the imported target redkit::hiredis.
#
# Order: a hiredis::hiredis target already defined by the parent project; hiredis's own CMake
# package (hiredis 1.x installs one); then find_path/find_library, which is what Debian's 0.14.1
# needs (it ships no usable CMake package). To pin a particular build (for instance a static
# libhiredis.a unpacked into a local prefix), set HIREDIS_INCLUDE_DIR and HIREDIS_LIBRARY, or
# HIREDIS_ROOT.
if(TARGET redkit::hiredis)
  return()
endif()

if(TARGET hiredis::hiredis AND NOT HIREDIS_LIBRARY)
  add_library(redkit::hiredis INTERFACE IMPORTED)
  set_target_properties(redkit::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES hiredis::hiredis)
  return()
endif()

if(NOT HIREDIS_LIBRARY AND NOT HIREDIS_INCLUDE_DIR AND NOT HIREDIS_ROOT)
  find_package(hiredis CONFIG QUIET)
  if(TARGET hiredis::hiredis)
    add_library(redkit::hiredis INTERFACE IMPORTED)
    set_target_properties(redkit::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES hiredis::hiredis)
    return()
  endif()
endif()

find_path(HIREDIS_INCLUDE_DIR NAMES hiredis/hiredis.h HINTS ${HIREDIS_ROOT} PATH_SUFFIXES include)
find_library(HIREDIS_LIBRARY NAMES hiredis HINTS ${HIREDIS_ROOT} PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)

if(NOT HIREDIS_INCLUDE_DIR OR NOT HIREDIS_LIBRARY)
  set(_redkit_hiredis_msg "redkit: hiredis not found (on Debian/Ubuntu: apt-get install libhiredis-dev; or set HIREDIS_ROOT)")
  if(redkit_FIND_REQUIRED OR NOT DEFINED redkit_FIND_REQUIRED)
    message(FATAL_ERROR "${_redkit_hiredis_msg}")
  endif()
  message(WARNING "${_redkit_hiredis_msg}")
  set(redkit_FOUND FALSE)
  return()
endif()

file(STRINGS "${HIREDIS_INCLUDE_DIR}/hiredis/hiredis.h" _redkit_hiredis_ver REGEX "^#define HIREDIS_(MAJOR|MINOR|PATCH) ")
string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" REDKIT_HIREDIS_VERSION "${_redkit_hiredis_ver}")

add_library(redkit::hiredis UNKNOWN IMPORTED)
set_target_properties(redkit::hiredis PROPERTIES
  IMPORTED_LOCATION "${HIREDIS_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${HIREDIS_INCLUDE_DIR}")
if(NOT redkit_FIND_QUIETLY)
  message(STATUS "redkit: hiredis ${REDKIT_HIREDIS_VERSION}: ${HIREDIS_LIBRARY}")
endif()
