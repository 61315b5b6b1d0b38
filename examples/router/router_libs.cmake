# Host libraries of the example router that need no operating system
# features beyond POSIX: the setkey(8) parser and the command module
# (framing, sysctl, stats, listings, and the setkey executor with its
# library backend). Included by examples/router/CMakeLists.txt and, when
# the examples are not built, by test/CMakeLists.txt for the unit tests of
# both.
include_guard(GLOBAL)

set(IPSECIF_ROUTER_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(ipsecif_setkey_parse STATIC ${IPSECIF_ROUTER_DIR}/setkey_parse.c)
target_include_directories(ipsecif_setkey_parse PUBLIC ${IPSECIF_ROOT_DIR}/include
    ${IPSECIF_ROUTER_DIR})
target_link_libraries(ipsecif_setkey_parse PUBLIC ipsecif)

add_library(ipsecif_router_cmd STATIC ${IPSECIF_ROUTER_DIR}/router_cmd.c
    ${IPSECIF_ROUTER_DIR}/setkey_exec.c ${IPSECIF_ROUTER_DIR}/setkey_lib.c)
target_include_directories(ipsecif_router_cmd PUBLIC ${IPSECIF_ROUTER_DIR})
target_link_libraries(ipsecif_router_cmd PUBLIC ipsecif_setkey_parse ipsecif)

# ipsecifd -H: the inbound side of the SPD as an nftables script (text
# only, so its unit test needs no root).
add_library(ipsecif_router_hostnft STATIC ${IPSECIF_ROUTER_DIR}/host_nft.c)
target_include_directories(ipsecif_router_hostnft PUBLIC ${IPSECIF_ROUTER_DIR})
target_link_libraries(ipsecif_router_hostnft PUBLIC ipsecif)

# ipsecifd -H: the state file (SPD and sysctls kept across a restart).
add_library(ipsecif_router_hoststate STATIC ${IPSECIF_ROUTER_DIR}/host_state.c)
target_include_directories(ipsecif_router_hoststate PUBLIC ${IPSECIF_ROUTER_DIR})
target_link_libraries(ipsecif_router_hoststate PUBLIC ipsecif_router_cmd ipsecif)
