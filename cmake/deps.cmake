# Every third-party library herald uses, as an imported target herald::<name>.
# Debian ships no .pc file for libev and http-parser, so those are found by hand.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

function(herald_pkg name module)
  pkg_check_modules(${name} REQUIRED IMPORTED_TARGET ${module})
  add_library(herald::${name} ALIAS PkgConfig::${name})
endfunction()

herald_pkg(hiredis hiredis)
herald_pkg(curl libcurl)
herald_pkg(msgpack msgpack)
herald_pkg(jansson jansson)
herald_pkg(crypto libcrypto)
herald_pkg(xml2 libxml-2.0)
herald_pkg(utf8proc libutf8proc)

pkg_check_modules(systemd IMPORTED_TARGET libsystemd)

find_path(EV_INCLUDE_DIR ev.h REQUIRED)
find_library(EV_LIBRARY ev REQUIRED)
add_library(herald_ev INTERFACE)
target_include_directories(herald_ev INTERFACE ${EV_INCLUDE_DIR})
target_link_libraries(herald_ev INTERFACE ${EV_LIBRARY} m)
add_library(herald::ev ALIAS herald_ev)

find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(herald_http_parser INTERFACE)
target_include_directories(herald_http_parser INTERFACE ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(herald_http_parser INTERFACE ${HTTP_PARSER_LIBRARY})
add_library(herald::http_parser ALIAS herald_http_parser)

# libcsv (RFC 4180) for CSV content calendars and contact lists; no .pc file.
find_path(CSV_INCLUDE_DIR csv.h REQUIRED)
find_library(CSV_LIBRARY csv REQUIRED)
add_library(herald_csv INTERFACE)
target_include_directories(herald_csv INTERFACE ${CSV_INCLUDE_DIR})
target_link_libraries(herald_csv INTERFACE ${CSV_LIBRARY})
add_library(herald::csv ALIAS herald_csv)
