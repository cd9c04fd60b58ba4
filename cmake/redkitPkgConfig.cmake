# pkg-config files for the install: redkit.pc (header-only) and, with REDKIT_COMPILED,
# redkit-compiled.pc, carrying the hiredis (and TLS) redkitFindHiredis found. Relocatable: the
# prefix is found from where the .pc file is, so `cmake --install --prefix` works.
file(RELATIVE_PATH redkit_pc_up "/prefix/${CMAKE_INSTALL_DATADIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" redkit_pc_up "${redkit_pc_up}")
set(REDKIT_PC_PREFIX "\${pcfiledir}/${redkit_pc_up}")

set(REDKIT_PC_CFLAGS "")
if(HIREDIS_INCLUDE_DIR AND NOT HIREDIS_INCLUDE_DIR STREQUAL "/usr/include")
  string(APPEND REDKIT_PC_CFLAGS " -I${HIREDIS_INCLUDE_DIR}")
endif()
set(redkit_pc_hiredis -lhiredis)
if(HIREDIS_LIBRARY)
  set(redkit_pc_hiredis "${HIREDIS_LIBRARY}")
endif()
set(REDKIT_PC_LIBS "${redkit_pc_hiredis}")
if(TARGET redkit::hiredis_ssl)
  # link order for static libraries: hiredis_ssl, hiredis, then OpenSSL
  set(redkit_pc_ssl -lhiredis_ssl)
  if(HIREDIS_SSL_LIBRARY)
    set(redkit_pc_ssl "${HIREDIS_SSL_LIBRARY}")
  endif()
  string(APPEND REDKIT_PC_CFLAGS " -DREDKIT_HAS_TLS=1")
  set(REDKIT_PC_LIBS "${redkit_pc_ssl} ${redkit_pc_hiredis} -lssl -lcrypto")
endif()

configure_file(${CMAKE_CURRENT_LIST_DIR}/redkit.pc.in ${PROJECT_BINARY_DIR}/redkit.pc @ONLY)
set(redkit_pc_files ${PROJECT_BINARY_DIR}/redkit.pc)
if(REDKIT_COMPILED)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/redkit-compiled.pc.in ${PROJECT_BINARY_DIR}/redkit-compiled.pc @ONLY)
  list(APPEND redkit_pc_files ${PROJECT_BINARY_DIR}/redkit-compiled.pc)
endif()
install(FILES ${redkit_pc_files} DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
