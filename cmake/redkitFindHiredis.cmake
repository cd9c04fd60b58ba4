# Finds hiredis and provides the imported target redkit::hiredis (and, for TLS, redkit::hiredis_ssl).
#
# Order: a hiredis::hiredis target already defined by the parent project; hiredis's own CMake
# package (hiredis 1.x installs one); then find_path/find_library, which is what Debian's 0.14.1
# needs (it ships no usable CMake package). To pin a particular build (for instance a static
# libhiredis.a unpacked into a local prefix), set HIREDIS_INCLUDE_DIR and HIREDIS_LIBRARY, or
# HIREDIS_ROOT.
if(NOT TARGET redkit::hiredis)
  if(TARGET hiredis::hiredis AND NOT HIREDIS_LIBRARY)
    add_library(redkit::hiredis INTERFACE IMPORTED)
    set_target_properties(redkit::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES hiredis::hiredis)
  else()
    if(NOT HIREDIS_LIBRARY AND NOT HIREDIS_INCLUDE_DIR AND NOT HIREDIS_ROOT)
      find_package(hiredis CONFIG QUIET)
    endif()
    if(TARGET hiredis::hiredis AND NOT HIREDIS_LIBRARY)
      add_library(redkit::hiredis INTERFACE IMPORTED)
      set_target_properties(redkit::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES hiredis::hiredis)
    else()
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
    endif()
  endif()
endif()

# TLS (rediss://): hiredis_ssl (hiredis >= 1.0 built with SSL) and OpenSSL. REDKIT_TLS is AUTO
# (use them when found), ON (require them) or OFF. When found, redkit::hiredis_ssl links them
# and defines REDKIT_HAS_TLS=1 for redkit's headers; HIREDIS_SSL_LIBRARY pins the library.
set(REDKIT_TLS "AUTO" CACHE STRING "TLS through hiredis_ssl and OpenSSL: AUTO, ON (required) or OFF")
if(NOT TARGET redkit::hiredis_ssl AND NOT REDKIT_TLS STREQUAL "OFF")
  set(_redkit_ssl_lib "")
  if(HIREDIS_SSL_LIBRARY)
    set(_redkit_ssl_lib "${HIREDIS_SSL_LIBRARY}")
  elseif(TARGET hiredis::hiredis_ssl)
    set(_redkit_ssl_lib hiredis::hiredis_ssl)
  elseif(HIREDIS_LIBRARY)
    get_filename_component(_redkit_hiredis_dir "${HIREDIS_LIBRARY}" DIRECTORY)
    if(HIREDIS_LIBRARY MATCHES "\\.a$")  # a static hiredis goes with a static hiredis_ssl
      set(_redkit_ssl_names libhiredis_ssl.a hiredis_ssl)
    else()
      set(_redkit_ssl_names hiredis_ssl)
    endif()
    find_library(HIREDIS_SSL_LIBRARY NAMES ${_redkit_ssl_names} HINTS "${_redkit_hiredis_dir}" NO_DEFAULT_PATH)
    set(_redkit_ssl_lib "${HIREDIS_SSL_LIBRARY}")
  endif()
  set(_redkit_ssl_header FALSE)
  if(HIREDIS_INCLUDE_DIR AND EXISTS "${HIREDIS_INCLUDE_DIR}/hiredis/hiredis_ssl.h")
    set(_redkit_ssl_header TRUE)
  elseif(TARGET hiredis::hiredis_ssl)
    set(_redkit_ssl_header TRUE)
  endif()
  find_package(OpenSSL QUIET)
  if(_redkit_ssl_lib AND _redkit_ssl_header AND OPENSSL_FOUND)
    add_library(redkit::hiredis_ssl INTERFACE IMPORTED)
    set_target_properties(redkit::hiredis_ssl PROPERTIES
      INTERFACE_LINK_LIBRARIES "${_redkit_ssl_lib};redkit::hiredis;OpenSSL::SSL;OpenSSL::Crypto"
      INTERFACE_COMPILE_DEFINITIONS "REDKIT_HAS_TLS=1")
    if(NOT redkit_FIND_QUIETLY)
      message(STATUS "redkit: TLS: ${_redkit_ssl_lib}, OpenSSL ${OPENSSL_VERSION}")
    endif()
  elseif(REDKIT_TLS STREQUAL "ON")
    message(FATAL_ERROR "redkit: ${_redkit_tls_reason}REDKIT_TLS=ON, but hiredis_ssl (hiredis >= 1.0 with SSL) or OpenSSL was not found "
                        "(set HIREDIS_SSL_LIBRARY, or install libssl-dev and a libhiredis-dev that ships libhiredis_ssl)")
  elseif(NOT redkit_FIND_QUIETLY)
    message(STATUS "redkit: TLS: off (no hiredis_ssl or OpenSSL; rediss:// will say how to get it)")
  endif()
endif()
