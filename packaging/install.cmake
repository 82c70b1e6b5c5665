# Install step of asrd (CMakeLists.txt: install(SCRIPT)): the files that depend on the install
# prefix or live outside it. Runs at install time, so `cmake --install BUILD --prefix P` and
# DESTDIR both apply. Set before this script: ASR_PKG_DIR (packaging/), ASR_DEFAULT_CONFIG (the
# absolute config path asrd reads by default), ASR_INSTALL_BINDIR (relative bin dir).
set(dest "$ENV{DESTDIR}")
set(bin "${CMAKE_INSTALL_PREFIX}/${ASR_INSTALL_BINDIR}/asrd")
# The config: an absolute path (the binary's default), under DESTDIR; an existing one is kept.
set(conf "${dest}${ASR_DEFAULT_CONFIG}")
if(EXISTS "${conf}")
  message(STATUS "Keeping: ${conf}")
else()
  # file(INSTALL) puts DESTDIR before an absolute destination itself
  get_filename_component(confdir "${ASR_DEFAULT_CONFIG}" DIRECTORY)
  file(INSTALL "${ASR_PKG_DIR}/asrd.conf" DESTINATION "${confdir}"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
# The unit, ExecStart naming the installed binary. /usr's units go to /usr/lib/systemd/system,
# another prefix's to PREFIX/lib/systemd/system (systemd reads /usr/local/lib/systemd/system too).
file(READ "${ASR_PKG_DIR}/asrd.service.in" unit)
string(REPLACE "@ASRD_BIN@" "${bin}" unit "${unit}")
set(unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
file(WRITE "${dest}${unitdir}/asrd.service" "${unit}")
message(STATUS "Installing: ${dest}${unitdir}/asrd.service")
file(INSTALL "${ASR_PKG_DIR}/asrd.sysusers" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d"
     RENAME asrd.conf)
