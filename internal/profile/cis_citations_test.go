package profile

import (
	"slices"
	"strings"
	"testing"

	"guestkit.io/batch/internal/profile/names"
)

// The CIS items the registry cites, as ComplianceAsCode's control files
// state them (github.com/ComplianceAsCode/content at b3a2cca9:
// controls/cis_debian12.yml v1.1.0, controls/cis_ubuntu2404.yml,
// products/rhel9/controls/cis_rhel9.yml): number, server level, CaC's
// automation status, the CaC rules mapped to it, and the title (whose
// "(Manual)" or "(Automated)" is the benchmark's own scoring). Rows for
// items no rule cites are left out; a new citation needs its row.

type cisBench string

const (
	cisDebian12   cisBench = "debian12"
	cisUbuntu2404 cisBench = "ubuntu2404"
	cisRHEL9      cisBench = "rhel9"
)

type cisItem struct {
	bench  cisBench
	id     string
	level  int // 1: l1_server, 2: l2_server only
	status string
	rules  []string
	title  string
}

var cisControls = []cisItem{
	{cisDebian12, "1.1.1.1", 1, "automated", []string{"kernel_module_cramfs_disabled"}, "Ensure cramfs kernel module is not available (Automated)"},
	{cisDebian12, "1.1.2.1.1", 1, "automated", []string{"partition_for_tmp"}, "Ensure /tmp is a separate partition (Automated)"},
	{cisDebian12, "1.1.2.1.2", 1, "automated", []string{"mount_option_tmp_nodev"}, "Ensure nodev option set on /tmp partition (Automated)"},
	{cisDebian12, "1.1.2.1.3", 1, "automated", []string{"mount_option_tmp_nosuid"}, "Ensure nosuid option set on /tmp partition (Automated)"},
	{cisDebian12, "1.1.2.1.4", 1, "automated", []string{"mount_option_tmp_noexec"}, "Ensure noexec option set on /tmp partition (Automated)"},
	{cisDebian12, "1.3.1.2", 1, "automated", []string{"grub2_enable_apparmor"}, "Ensure AppArmor is enabled in the bootloader configuration (Automated)"},
	{cisDebian12, "1.4.1", 1, "automated", []string{"grub2_password", "grub2_uefi_password"}, "Ensure bootloader password is set (Automated)"},
	{cisDebian12, "1.4.2", 1, "automated", []string{"file_owner_grub2_cfg", "file_permissions_grub2_cfg"}, "Ensure access to bootloader config is configured (Automated)"},
	{cisDebian12, "1.5.1", 1, "automated", []string{"sysctl_kernel_randomize_va_space"}, "Ensure address space layout randomization is enabled (Automated)"},
	{cisDebian12, "1.5.3", 1, "automated", []string{"disable_users_coredumps", "sysctl_fs_suid_dumpable"}, "Ensure core dumps are restricted (Automated)"},
	{cisDebian12, "2.1.2", 1, "automated", []string{"package_avahi_removed", "service_avahi-daemon_disabled"}, "Ensure avahi daemon services are not in use (Automated)"},
	{cisDebian12, "2.1.11", 1, "automated", []string{"package_cups_removed", "service_cups_disabled"}, "Ensure print server services are not in use (Automated)"},
	{cisDebian12, "2.1.16", 1, "automated", []string{"package_tftp-server_removed", "service_tftp_disabled"}, "Ensure tftp server services are not in use (Automated)"},
	{cisDebian12, "2.1.19", 1, "automated", []string{"package_xinetd_removed", "service_xinetd_disabled"}, "Ensure xinetd services are not in use (Automated)"},
	{cisDebian12, "2.2.2", 1, "automated", []string{"package_rsh_removed"}, "Ensure rsh client is not installed (Automated)"},
	{cisDebian12, "2.2.4", 1, "automated", []string{"package_inetutils-telnet_removed", "package_telnet_removed"}, "Ensure telnet client is not installed (Automated)"},
	{cisDebian12, "2.3.1.1", 1, "automated", []string{"package_chrony_installed", "service_chronyd_enabled", "service_chronyd_disabled", "package_timesyncd_installed", "service_timesyncd_enabled", "service_timesyncd_disabled", "ntp_single_service_active"}, "Ensure a single time synchronization daemon is in use (Automated)"},
	{cisDebian12, "2.3.3.1", 1, "partial", []string{"chronyd_configure_pool_and_server"}, "Ensure chrony is configured with authorized timeserver (Automated)"},
	{cisDebian12, "2.4.1.2", 1, "automated", []string{"file_cron_allow_exists", "file_groupowner_crontab", "file_owner_crontab", "file_permissions_crontab"}, "Ensure permissions on /etc/crontab are configured (Automated)"},
	{cisDebian12, "2.4.1.8", 1, "automated", []string{"file_cron_deny_not_exist", "file_groupowner_cron_allow", "file_owner_cron_allow", "file_permissions_cron_allow"}, "Ensure crontab is restricted to authorized users (Automated)"},
	{cisDebian12, "3.3.1", 1, "automated", []string{"sysctl_net_ipv6_conf_all_forwarding", "sysctl_net_ipv4_ip_forward"}, "Ensure ip forwarding is disabled (Automated)"},
	{cisDebian12, "3.3.2", 1, "automated", []string{"sysctl_net_ipv4_conf_all_send_redirects", "sysctl_net_ipv4_conf_default_send_redirects"}, "Ensure packet redirect sending is disabled (Automated)"},
	{cisDebian12, "3.3.5", 1, "automated", []string{"sysctl_net_ipv6_conf_all_accept_redirects", "sysctl_net_ipv6_conf_default_accept_redirects", "sysctl_net_ipv4_conf_all_accept_redirects", "sysctl_net_ipv4_conf_default_accept_redirects"}, "Ensure icmp redirects are not accepted (Automated)"},
	{cisDebian12, "3.3.7", 1, "automated", []string{"sysctl_net_ipv4_conf_all_rp_filter", "sysctl_net_ipv4_conf_default_rp_filter"}, "Ensure reverse path filtering is enabled (Automated)"},
	{cisDebian12, "3.3.8", 1, "automated", []string{"sysctl_net_ipv6_conf_all_accept_source_route", "sysctl_net_ipv6_conf_default_accept_source_route", "sysctl_net_ipv4_conf_all_accept_source_route", "sysctl_net_ipv4_conf_default_accept_source_route"}, "Ensure source routed packets are not accepted (Automated)"},
	{cisDebian12, "3.3.10", 1, "automated", []string{"sysctl_net_ipv4_tcp_syncookies"}, "Ensure tcp syn cookies is enabled (Automated)"},
	{cisDebian12, "4.1.1", 1, "automated", []string{"firewall_single_service_active"}, "Ensure a single firewall configuration utility is in use (Automated)"},
	{cisDebian12, "5.1.1", 1, "automated", []string{"file_groupowner_sshd_config", "file_owner_sshd_config", "file_permissions_sshd_config"}, "Ensure permissions on /etc/ssh/sshd_config are configured (Automated)"},
	{cisDebian12, "5.1.6", 1, "automated", []string{"sshd_use_strong_ciphers"}, "Ensure sshd Ciphers are configured (Automated)"},
	{cisDebian12, "5.1.7", 1, "partial", []string{"sshd_set_idle_timeout", "sshd_set_keepalive"}, "Ensure sshd ClientAliveInterval and ClientAliveCountMax are configured (Automated)"},
	{cisDebian12, "5.1.10", 1, "automated", []string{"disable_host_auth"}, "Ensure sshd HostbasedAuthentication is disabled (Automated)"},
	{cisDebian12, "5.1.11", 1, "automated", []string{"sshd_disable_rhosts"}, "Ensure sshd IgnoreRhosts is enabled (Automated)"},
	{cisDebian12, "5.1.12", 1, "automated", []string{"sshd_use_strong_kex"}, "Ensure sshd KexAlgorithms is configured (Automated)"},
	{cisDebian12, "5.1.13", 1, "automated", []string{"sshd_set_login_grace_time"}, "Ensure sshd LoginGraceTime is configured (Automated)"},
	{cisDebian12, "5.1.14", 1, "automated", []string{"sshd_set_loglevel_info"}, "Ensure sshd LogLevel is configured (Automated)"},
	{cisDebian12, "5.1.15", 1, "automated", []string{"sshd_use_strong_macs"}, "Ensure sshd MACs are configured (Automated)"},
	{cisDebian12, "5.1.16", 1, "automated", []string{"sshd_set_max_auth_tries"}, "Ensure sshd MaxAuthTries is configured (Automated)"},
	{cisDebian12, "5.1.19", 1, "automated", []string{"sshd_disable_empty_passwords"}, "Ensure sshd PermitEmptyPasswords is disabled (Automated)"},
	{cisDebian12, "5.1.20", 1, "automated", []string{"sshd_disable_root_login"}, "Ensure sshd PermitRootLogin is disabled (Automated)"},
	{cisDebian12, "5.1.21", 1, "automated", []string{"sshd_do_not_permit_user_env"}, "Ensure sshd PermitUserEnvironment is disabled (Automated)"},
	{cisDebian12, "5.3.3.1.1", 1, "automated", []string{"accounts_passwords_pam_faillock_deny"}, "Ensure password failed attempts lockout is configured (Automated)"},
	{cisDebian12, "5.3.3.2.2", 1, "automated", []string{"accounts_password_pam_minlen"}, "Ensure minimum password length is configured (Automated)"},
	{cisDebian12, "5.3.3.4.1", 1, "automated", []string{"no_empty_passwords_unix"}, "Ensure pam_unix does not include nullok (Automated)"},
	{cisDebian12, "5.4.1.1", 1, "automated", []string{"accounts_maximum_age_login_defs", "accounts_password_set_max_life_existing"}, "Ensure password expiration is configured (Automated)"},
	{cisDebian12, "5.4.1.2", 2, "automated", []string{"accounts_minimum_age_login_defs", "accounts_password_set_min_life_existing"}, "Ensure minimum password days is configured (Manual)"},
	{cisDebian12, "5.4.1.3", 1, "automated", []string{"accounts_password_warn_age_login_defs"}, "Ensure password expiration warning days is configured (Automated)"},
	{cisDebian12, "5.4.2.1", 1, "automated", []string{"accounts_no_uid_except_zero"}, "Ensure root is the only UID 0 account (Automated)"},
	{cisDebian12, "5.4.3.3", 1, "automated", []string{"accounts_umask_etc_bashrc", "accounts_umask_etc_login_defs", "accounts_umask_etc_profile"}, "Ensure default user umask is configured (Automated)"},
	{cisDebian12, "6.2.1.1", 2, "automated", []string{"package_audit_installed", "package_audit-audispd-plugins_installed"}, "Ensure auditd packages are installed (Automated)"},
	{cisDebian12, "6.2.1.2", 2, "automated", []string{"service_auditd_enabled"}, "Ensure auditd service is enabled and active (Automated)"},
	{cisDebian12, "6.3.1", 1, "automated", []string{"aide_build_database", "package_aide_installed"}, "Ensure AIDE is installed (Automated)"},
	{cisDebian12, "6.3.2", 1, "automated", []string{"aide_periodic_checking_systemd_timer"}, "Ensure filesystem integrity is regularly checked (Automated)"},
	{cisDebian12, "7.1.1", 1, "automated", []string{"file_groupowner_etc_passwd", "file_owner_etc_passwd", "file_permissions_etc_passwd"}, "Ensure permissions on /etc/passwd are configured (Automated)"},
	{cisDebian12, "7.1.3", 1, "automated", []string{"file_groupowner_etc_group", "file_owner_etc_group", "file_permissions_etc_group"}, "Ensure permissions on /etc/group are configured (Automated)"},
	{cisDebian12, "7.1.5", 1, "automated", []string{"file_groupowner_etc_shadow", "file_owner_etc_shadow", "file_permissions_etc_shadow"}, "Ensure permissions on /etc/shadow are configured (Automated)"},
	{cisDebian12, "7.1.11", 1, "automated", []string{"file_permissions_unauthorized_world_writable"}, "Ensure world writable files and directories are secured (Automated)"},
	{cisDebian12, "7.2.1", 1, "automated", []string{"accounts_password_all_shadowed"}, "Ensure accounts in /etc/passwd use shadowed passwords (Automated)"},
	{cisDebian12, "7.2.2", 1, "automated", []string{"no_empty_passwords_etc_shadow"}, "Ensure /etc/shadow password fields are not empty (Automated)"},
	{cisDebian12, "7.2.5", 1, "automated", []string{"account_unique_id"}, "Ensure no duplicate UIDs exist (Automated)"},
	{cisUbuntu2404, "1.1.1.1", 1, "automated", []string{"kernel_module_cramfs_disabled"}, "Ensure cramfs kernel module is not available (Automated)"},
	{cisUbuntu2404, "1.1.2.1.1", 1, "automated", []string{"partition_for_tmp"}, "Ensure /tmp is a separate partition (Automated)"},
	{cisUbuntu2404, "1.1.2.1.2", 1, "automated", []string{"mount_option_tmp_nodev"}, "Ensure nodev option set on /tmp partition (Automated)"},
	{cisUbuntu2404, "1.1.2.1.3", 1, "automated", []string{"mount_option_tmp_nosuid"}, "Ensure nosuid option set on /tmp partition (Automated)"},
	{cisUbuntu2404, "1.1.2.1.4", 1, "automated", []string{"mount_option_tmp_noexec"}, "Ensure noexec option set on /tmp partition (Automated)"},
	{cisUbuntu2404, "1.3.1.2", 1, "automated", []string{"grub2_enable_apparmor"}, "Ensure AppArmor is enabled in the bootloader configuration (Automated)"},
	{cisUbuntu2404, "1.4.1", 1, "automated", []string{"grub2_password", "grub2_uefi_password"}, "Ensure bootloader password is set (Automated)"},
	{cisUbuntu2404, "1.4.2", 1, "automated", []string{"file_owner_grub2_cfg", "file_permissions_grub2_cfg"}, "Ensure access to bootloader config is configured (Automated)"},
	{cisUbuntu2404, "1.5.1", 1, "automated", []string{"sysctl_kernel_randomize_va_space"}, "Ensure address space layout randomization is enabled (Automated)"},
	{cisUbuntu2404, "1.5.3", 1, "automated", []string{"disable_users_coredumps", "sysctl_fs_suid_dumpable"}, "Ensure core dumps are restricted (Automated)"},
	{cisUbuntu2404, "2.1.2", 1, "automated", []string{"package_avahi_removed", "service_avahi-daemon_disabled"}, "Ensure avahi daemon services are not in use (Automated)"},
	{cisUbuntu2404, "2.1.11", 1, "automated", []string{"package_cups_removed", "service_cups_disabled"}, "Ensure print server services are not in use (Automated)"},
	{cisUbuntu2404, "2.1.16", 1, "automated", []string{"package_tftp-server_removed", "service_tftp_disabled"}, "Ensure tftp server services are not in use (Automated)"},
	{cisUbuntu2404, "2.1.19", 1, "automated", []string{"package_xinetd_removed", "service_xinetd_disabled"}, "Ensure xinetd services are not in use (Automated)"},
	{cisUbuntu2404, "2.2.2", 1, "automated", []string{"package_rsh_removed"}, "Ensure rsh client is not installed (Automated)"},
	{cisUbuntu2404, "2.2.4", 1, "automated", []string{"package_inetutils-telnet_removed", "package_telnet_removed"}, "Ensure telnet client is not installed (Automated)"},
	{cisUbuntu2404, "2.3.1.1", 1, "automated", []string{"package_chrony_installed", "service_chronyd_enabled", "service_chronyd_disabled", "package_timesyncd_installed", "service_timesyncd_enabled", "service_timesyncd_disabled", "ntp_single_service_active"}, "Ensure a single time synchronization daemon is in use (Automated)"},
	{cisUbuntu2404, "2.3.3.1", 1, "partial", []string{"chronyd_configure_pool_and_server"}, "Ensure chrony is configured with authorized timeserver (Automated)"},
	{cisUbuntu2404, "2.4.1.2", 1, "automated", []string{"file_groupowner_crontab", "file_owner_crontab", "file_permissions_crontab"}, "Ensure permissions on /etc/crontab are configured (Automated)"},
	{cisUbuntu2404, "2.4.1.8", 1, "automated", []string{"file_cron_allow_exists", "file_cron_deny_not_exist", "file_groupowner_cron_allow", "file_owner_cron_allow", "file_permissions_cron_allow"}, "Ensure crontab is restricted to authorized users (Automated)"},
	{cisUbuntu2404, "3.3.1", 1, "automated", []string{"sysctl_net_ipv6_conf_all_forwarding", "sysctl_net_ipv4_ip_forward"}, "Ensure ip forwarding is disabled (Automated)"},
	{cisUbuntu2404, "3.3.2", 1, "automated", []string{"sysctl_net_ipv4_conf_all_send_redirects", "sysctl_net_ipv4_conf_default_send_redirects"}, "Ensure packet redirect sending is disabled (Automated)"},
	{cisUbuntu2404, "3.3.5", 1, "automated", []string{"sysctl_net_ipv6_conf_all_accept_redirects", "sysctl_net_ipv6_conf_default_accept_redirects", "sysctl_net_ipv4_conf_all_accept_redirects", "sysctl_net_ipv4_conf_default_accept_redirects"}, "Ensure icmp redirects are not accepted (Automated)"},
	{cisUbuntu2404, "3.3.7", 1, "automated", []string{"sysctl_net_ipv4_conf_all_rp_filter", "sysctl_net_ipv4_conf_default_rp_filter"}, "Ensure reverse path filtering is enabled (Automated)"},
	{cisUbuntu2404, "3.3.8", 1, "automated", []string{"sysctl_net_ipv6_conf_all_accept_source_route", "sysctl_net_ipv6_conf_default_accept_source_route", "sysctl_net_ipv4_conf_all_accept_source_route", "sysctl_net_ipv4_conf_default_accept_source_route"}, "Ensure source routed packets are not accepted (Automated)"},
	{cisUbuntu2404, "3.3.10", 1, "automated", []string{"sysctl_net_ipv4_tcp_syncookies"}, "Ensure tcp syn cookies is enabled (Automated)"},
	{cisUbuntu2404, "4.1.1", 1, "automated", []string{"firewall_single_service_active"}, "Ensure a single firewall configuration utility is in use (Automated)"},
	{cisUbuntu2404, "5.1.1", 1, "automated", []string{"file_groupowner_sshd_config", "file_groupowner_sshd_drop_in_config", "file_owner_sshd_config", "file_owner_sshd_drop_in_config", "file_permissions_sshd_config", "file_permissions_sshd_drop_in_config"}, "Ensure permissions on /etc/ssh/sshd_config are configured (Automated)"},
	{cisUbuntu2404, "5.1.6", 1, "automated", []string{"sshd_use_strong_ciphers"}, "Ensure sshd Ciphers are configured (Automated)"},
	{cisUbuntu2404, "5.1.7", 1, "partial", []string{"sshd_set_idle_timeout", "sshd_set_keepalive"}, "Ensure sshd ClientAliveInterval and ClientAliveCountMax are configured (Automated)"},
	{cisUbuntu2404, "5.1.10", 1, "automated", []string{"disable_host_auth"}, "Ensure sshd HostbasedAuthentication is disabled (Automated)"},
	{cisUbuntu2404, "5.1.11", 1, "automated", []string{"sshd_disable_rhosts"}, "Ensure sshd IgnoreRhosts is enabled (Automated)"},
	{cisUbuntu2404, "5.1.12", 1, "automated", []string{"sshd_use_strong_kex"}, "Ensure sshd KexAlgorithms is configured (Automated)"},
	{cisUbuntu2404, "5.1.13", 1, "automated", []string{"sshd_set_login_grace_time"}, "Ensure sshd LoginGraceTime is configured (Automated)"},
	{cisUbuntu2404, "5.1.14", 1, "automated", []string{"sshd_set_loglevel_info"}, "Ensure sshd LogLevel is configured (Automated)"},
	{cisUbuntu2404, "5.1.15", 1, "automated", []string{"sshd_use_strong_macs"}, "Ensure sshd MACs are configured (Automated)"},
	{cisUbuntu2404, "5.1.16", 1, "automated", []string{"sshd_set_max_auth_tries"}, "Ensure sshd MaxAuthTries is configured (Automated)"},
	{cisUbuntu2404, "5.1.19", 1, "automated", []string{"sshd_disable_empty_passwords"}, "Ensure sshd PermitEmptyPasswords is disabled (Automated)"},
	{cisUbuntu2404, "5.1.20", 1, "automated", []string{"sshd_disable_root_login"}, "Ensure sshd PermitRootLogin is disabled (Automated)"},
	{cisUbuntu2404, "5.1.21", 1, "automated", []string{"sshd_do_not_permit_user_env"}, "Ensure sshd PermitUserEnvironment is disabled (Automated)"},
	{cisUbuntu2404, "5.3.3.1.1", 1, "automated", []string{"accounts_passwords_pam_faillock_deny"}, "Ensure password failed attempts lockout is configured (Automated)"},
	{cisUbuntu2404, "5.3.3.2.2", 1, "automated", []string{"accounts_password_pam_minlen"}, "Ensure minimum password length is configured (Automated)"},
	{cisUbuntu2404, "5.3.3.4.1", 1, "automated", []string{"no_empty_passwords_unix"}, "Ensure pam_unix does not include nullok (Automated)"},
	{cisUbuntu2404, "5.4.1.1", 1, "automated", []string{"accounts_maximum_age_login_defs", "accounts_password_set_max_life_existing"}, "Ensure password expiration is configured (Automated)"},
	{cisUbuntu2404, "5.4.1.2", 2, "automated", []string{"accounts_minimum_age_login_defs", "accounts_password_set_min_life_existing"}, "Ensure minimum password days is configured (Manual)"},
	{cisUbuntu2404, "5.4.1.3", 1, "automated", []string{"accounts_password_warn_age_login_defs"}, "Ensure password expiration warning days is configured (Automated)"},
	{cisUbuntu2404, "5.4.2.1", 1, "automated", []string{"accounts_no_uid_except_zero"}, "Ensure root is the only UID 0 account (Automated)"},
	{cisUbuntu2404, "5.4.3.3", 1, "automated", []string{"accounts_umask_etc_bashrc", "accounts_umask_etc_login_defs", "accounts_umask_etc_profile"}, "Ensure default user umask is configured (Automated)"},
	{cisUbuntu2404, "6.2.1.1", 2, "automated", []string{"package_audit_installed", "package_audit-audispd-plugins_installed"}, "Ensure auditd packages are installed (Automated)"},
	{cisUbuntu2404, "6.2.1.2", 2, "automated", []string{"service_auditd_enabled"}, "Ensure auditd service is enabled and active (Automated)"},
	{cisUbuntu2404, "6.3.1", 1, "automated", []string{"aide_build_database", "package_aide_installed"}, "Ensure AIDE is installed (Automated)"},
	{cisUbuntu2404, "6.3.2", 1, "automated", []string{"aide_periodic_checking_systemd_timer"}, "Ensure filesystem integrity is regularly checked (Automated)"},
	{cisUbuntu2404, "7.1.1", 1, "automated", []string{"file_groupowner_etc_passwd", "file_owner_etc_passwd", "file_permissions_etc_passwd"}, "Ensure permissions on /etc/passwd are configured (Automated)"},
	{cisUbuntu2404, "7.1.3", 1, "automated", []string{"file_groupowner_etc_group", "file_owner_etc_group", "file_permissions_etc_group"}, "Ensure permissions on /etc/group are configured (Automated)"},
	{cisUbuntu2404, "7.1.5", 1, "automated", []string{"file_groupowner_etc_shadow", "file_owner_etc_shadow", "file_permissions_etc_shadow"}, "Ensure permissions on /etc/shadow are configured (Automated)"},
	{cisUbuntu2404, "7.1.11", 1, "automated", []string{"file_permissions_unauthorized_world_writable"}, "Ensure world writable files and directories are secured (Automated)"},
	{cisUbuntu2404, "7.2.1", 1, "automated", []string{"accounts_password_all_shadowed"}, "Ensure accounts in /etc/passwd use shadowed passwords (Automated)"},
	{cisUbuntu2404, "7.2.2", 1, "automated", []string{"no_empty_passwords_etc_shadow"}, "Ensure /etc/shadow password fields are not empty (Automated)"},
	{cisUbuntu2404, "7.2.5", 1, "automated", []string{"account_unique_id"}, "Ensure no duplicate UIDs exist (Automated)"},
	{cisRHEL9, "1.1.1.1", 1, "automated", []string{"kernel_module_cramfs_disabled"}, "Ensure cramfs kernel module is not available (Automated)"},
	{cisRHEL9, "1.1.2.1.1", 1, "automated", []string{"partition_for_tmp"}, "Ensure /tmp is a separate partition (Automated)"},
	{cisRHEL9, "1.1.2.1.2", 1, "automated", []string{"mount_option_tmp_nodev"}, "Ensure nodev option set on /tmp partition (Automated)"},
	{cisRHEL9, "1.1.2.1.3", 1, "automated", []string{"mount_option_tmp_nosuid"}, "Ensure nosuid option set on /tmp partition (Automated)"},
	{cisRHEL9, "1.1.2.1.4", 1, "automated", []string{"mount_option_tmp_noexec"}, "Ensure noexec option set on /tmp partition (Automated)"},
	{cisRHEL9, "1.2.1.2", 1, "automated", []string{"ensure_gpgcheck_globally_activated", "ensure_gpgcheck_never_disabled"}, "Ensure gpgcheck is globally activated (Automated)"},
	{cisRHEL9, "1.3.1.3", 1, "automated", []string{"selinux_policytype"}, "Ensure SELinux policy is configured (Automated)"},
	{cisRHEL9, "1.3.1.4", 1, "automated", []string{"selinux_not_disabled"}, "Ensure the SELinux mode is not disabled (Automated)"},
	{cisRHEL9, "1.3.1.5", 2, "automated", []string{"selinux_state"}, "Ensure the SELinux mode is enforcing (Automated)"},
	{cisRHEL9, "1.4.1", 1, "automated", []string{"grub2_password"}, "Ensure bootloader password is set (Automated)"},
	{cisRHEL9, "1.4.2", 1, "pending", []string{"file_groupowner_grub2_cfg", "file_owner_grub2_cfg", "file_permissions_grub2_cfg", "file_groupowner_user_cfg", "file_owner_user_cfg", "file_permissions_user_cfg"}, "Ensure access to bootloader config is configured (Automated)"},
	{cisRHEL9, "1.5.1", 1, "automated", []string{"sysctl_kernel_randomize_va_space"}, "Ensure address space layout randomization is enabled (Automated)"},
	{cisRHEL9, "1.5.3", 1, "automated", []string{"coredump_disable_backtraces"}, "Ensure core dump backtraces are disabled (Automated)"},
	{cisRHEL9, "1.5.4", 1, "automated", []string{"coredump_disable_storage"}, "Ensure core dump storage is disabled (Automated)"},
	{cisRHEL9, "2.1.2", 1, "automated", []string{"service_avahi-daemon_disabled"}, "Ensure avahi daemon services are not in use (Automated)"},
	{cisRHEL9, "2.1.11", 1, "automated", []string{"service_cups_disabled"}, "Ensure print server services are not in use (Automated)"},
	{cisRHEL9, "2.1.15", 1, "automated", []string{"package_telnet-server_removed"}, "Ensure telnet server services are not in use (Automated)"},
	{cisRHEL9, "2.1.16", 1, "automated", []string{"package_tftp-server_removed"}, "Ensure tftp server services are not in use (Automated)"},
	{cisRHEL9, "2.1.19", 1, "automated", nil, "Ensure xinetd services are not in use (Automated)"},
	{cisRHEL9, "2.2.4", 1, "automated", []string{"package_telnet_removed"}, "Ensure telnet client is not installed (Automated)"},
	{cisRHEL9, "2.3.1", 1, "automated", []string{"package_chrony_installed"}, "Ensure time synchronization is in use (Automated)"},
	{cisRHEL9, "2.3.2", 1, "automated", []string{"chronyd_specify_remote_server"}, "Ensure chrony is configured (Automated)"},
	{cisRHEL9, "2.4.1.2", 1, "automated", []string{"file_groupowner_crontab", "file_owner_crontab", "file_permissions_crontab"}, "Ensure permissions on /etc/crontab are configured (Automated)"},
	{cisRHEL9, "2.4.1.8", 1, "automated", []string{"file_cron_deny_not_exist", "file_cron_allow_exists", "file_groupowner_cron_allow", "file_owner_cron_allow", "file_permissions_cron_allow"}, "Ensure crontab is restricted to authorized users (Automated)"},
	{cisRHEL9, "3.3.1", 1, "automated", []string{"sysctl_net_ipv4_ip_forward", "sysctl_net_ipv6_conf_all_forwarding"}, "Ensure IP forwarding is disabled (Automated)"},
	{cisRHEL9, "3.3.2", 1, "automated", []string{"sysctl_net_ipv4_conf_all_send_redirects", "sysctl_net_ipv4_conf_default_send_redirects"}, "Ensure packet redirect sending is disabled (Automated)"},
	{cisRHEL9, "3.3.5", 1, "automated", []string{"sysctl_net_ipv4_conf_all_accept_redirects", "sysctl_net_ipv4_conf_default_accept_redirects", "sysctl_net_ipv6_conf_all_accept_redirects", "sysctl_net_ipv6_conf_default_accept_redirects"}, "Ensure icmp redirects are not accepted (Automated)"},
	{cisRHEL9, "3.3.7", 1, "automated", []string{"sysctl_net_ipv4_conf_all_rp_filter", "sysctl_net_ipv4_conf_default_rp_filter"}, "Ensure reverse path filtering is enabled (Automated)"},
	{cisRHEL9, "3.3.8", 1, "automated", []string{"sysctl_net_ipv4_conf_all_accept_source_route", "sysctl_net_ipv4_conf_default_accept_source_route", "sysctl_net_ipv6_conf_all_accept_source_route", "sysctl_net_ipv6_conf_default_accept_source_route"}, "Ensure source routed packets are not accepted (Automated)"},
	{cisRHEL9, "3.3.10", 1, "automated", []string{"sysctl_net_ipv4_tcp_syncookies"}, "Ensure tcp syn cookies is enabled (Automated)"},
	{cisRHEL9, "4.1.2", 1, "automated", []string{"service_firewalld_enabled", "package_firewalld_installed", "service_nftables_disabled"}, "Ensure a single firewall configuration utility is in use (Automated)"},
	{cisRHEL9, "5.1.1", 1, "automated", []string{"file_groupowner_sshd_config", "file_owner_sshd_config", "file_permissions_sshd_config"}, "Ensure permissions on /etc/ssh/sshd_config are configured (Automated)"},
	{cisRHEL9, "5.1.4", 1, "automated", []string{"configure_custom_crypto_policy_cis"}, "Ensure sshd Ciphers are configured (Automated)"},
	{cisRHEL9, "5.1.5", 1, "automated", []string{"configure_custom_crypto_policy_cis"}, "Ensure sshd KexAlgorithms is configured (Automated)"},
	{cisRHEL9, "5.1.6", 1, "automated", []string{"configure_custom_crypto_policy_cis"}, "Ensure sshd MACs are configured (Automated)"},
	{cisRHEL9, "5.1.9", 1, "automated", []string{"sshd_set_idle_timeout", "sshd_set_keepalive"}, "Ensure sshd ClientAliveInterval and ClientAliveCountMax are configured (Automated)"},
	{cisRHEL9, "5.1.12", 1, "automated", []string{"disable_host_auth"}, "Ensure sshd HostbasedAuthentication is disabled (Automated)"},
	{cisRHEL9, "5.1.13", 1, "automated", []string{"sshd_disable_rhosts"}, "Ensure sshd IgnoreRhosts is enabled (Automated)"},
	{cisRHEL9, "5.1.14", 1, "automated", []string{"sshd_set_login_grace_time"}, "Ensure sshd LoginGraceTime is configured (Automated)"},
	{cisRHEL9, "5.1.15", 1, "automated", []string{"sshd_set_loglevel_verbose"}, "Ensure sshd LogLevel is configured (Automated)"},
	{cisRHEL9, "5.1.16", 1, "automated", []string{"sshd_set_max_auth_tries"}, "Ensure sshd MaxAuthTries is configured (Automated)"},
	{cisRHEL9, "5.1.19", 1, "automated", []string{"sshd_disable_empty_passwords"}, "Ensure sshd PermitEmptyPasswords is disabled (Automated)"},
	{cisRHEL9, "5.1.20", 1, "automated", []string{"sshd_disable_root_login"}, "Ensure sshd PermitRootLogin is disabled (Automated)"},
	{cisRHEL9, "5.1.21", 1, "automated", []string{"sshd_do_not_permit_user_env"}, "Ensure sshd PermitUserEnvironment is disabled (Automated)"},
	{cisRHEL9, "5.3.3.1.1", 1, "automated", []string{"accounts_passwords_pam_faillock_deny"}, "Ensure password failed attempts lockout is configured (Automated)"},
	{cisRHEL9, "5.3.3.2.2", 1, "automated", []string{"accounts_password_pam_minlen"}, "Ensure password length is configured (Automated)"},
	{cisRHEL9, "5.3.3.4.1", 1, "automated", []string{"no_empty_passwords"}, "Ensure pam_unix does not include nullok (Automated)"},
	{cisRHEL9, "5.4.1.1", 1, "automated", []string{"accounts_maximum_age_login_defs", "accounts_password_set_max_life_existing"}, "Ensure password expiration is configured (Automated)"},
	{cisRHEL9, "5.4.1.2", 2, "automated", []string{"accounts_minimum_age_login_defs", "accounts_password_set_min_life_existing"}, "Ensure minimum password days is configured (Automated)"},
	{cisRHEL9, "5.4.1.3", 1, "automated", []string{"accounts_password_warn_age_login_defs", "accounts_password_set_warn_age_existing"}, "Ensure password expiration warning days is configured (Automated)"},
	{cisRHEL9, "5.4.2.1", 1, "automated", []string{"accounts_no_uid_except_zero"}, "Ensure root is the only UID 0 account (Automated)"},
	{cisRHEL9, "5.4.3.3", 1, "automated", []string{"accounts_umask_etc_bashrc", "accounts_umask_etc_login_defs", "accounts_umask_etc_profile"}, "Ensure default user umask is configured (Automated)"},
	{cisRHEL9, "6.1.1", 1, "automated", []string{"package_aide_installed", "aide_build_database"}, "Ensure AIDE is installed (Automated)"},
	{cisRHEL9, "6.1.2", 1, "automated", []string{"aide_periodic_cron_checking"}, "Ensure filesystem integrity is regularly checked (Automated)"},
	{cisRHEL9, "6.3.1.1", 2, "automated", []string{"package_audit_installed", "package_audit-libs_installed"}, "Ensure auditd packages are installed (Automated)"},
	{cisRHEL9, "6.3.1.4", 2, "automated", []string{"service_auditd_enabled"}, "Ensure auditd service is enabled and active (Automated)"},
	{cisRHEL9, "7.1.1", 1, "automated", []string{"file_groupowner_etc_passwd", "file_owner_etc_passwd", "file_permissions_etc_passwd"}, "Ensure permissions on /etc/passwd are configured (Automated)"},
	{cisRHEL9, "7.1.3", 1, "automated", []string{"file_groupowner_etc_group", "file_owner_etc_group", "file_permissions_etc_group"}, "Ensure permissions on /etc/group are configured (Automated)"},
	{cisRHEL9, "7.1.5", 1, "automated", []string{"file_owner_etc_shadow", "file_groupowner_etc_shadow", "file_permissions_etc_shadow"}, "Ensure permissions on /etc/shadow are configured (Automated)"},
	{cisRHEL9, "7.1.11", 1, "automated", []string{"file_permissions_unauthorized_world_writable", "dir_perms_world_writable_sticky_bits"}, "Ensure world writable files and directories are secured (Automated)"},
	{cisRHEL9, "7.2.1", 1, "automated", []string{"accounts_password_all_shadowed"}, "Ensure accounts in /etc/passwd use shadowed passwords (Automated)"},
	{cisRHEL9, "7.2.2", 1, "automated", []string{"no_empty_passwords_etc_shadow"}, "Ensure /etc/shadow password fields are not empty (Automated)"},
	{cisRHEL9, "7.2.4", 1, "automated", []string{"account_unique_id"}, "Ensure no duplicate UIDs exist (Automated)"},
}

// cisUnmapped: a cited item whose control does not map the rule's CaC id,
// and why the citation holds. Keyed "rule bench item".
var cisUnmapped = map[string]string{
	"sshd_use_strong_ciphers rhel9 5.1.4":                    "RHEL 9 maps the item to configure_custom_crypto_policy_cis (sshd's list comes from crypto-policies there); the item is sshd's Ciphers, which the rule decides",
	"sshd_use_strong_macs rhel9 5.1.6":                       "as 5.1.4: crypto-policies in CaC, sshd's MACs in the benchmark",
	"sshd_use_strong_kex rhel9 5.1.5":                        "as 5.1.4: crypto-policies in CaC, sshd's KexAlgorithms in the benchmark",
	"sshd_set_loglevel_info rhel9 5.1.15":                    "RHEL 9 maps sshd_set_loglevel_verbose; the item accepts INFO or VERBOSE, as the rule does",
	"dir_perms_world_writable_sticky_bits debian12 7.1.11":   "the item covers world-writable directories without the sticky bit; RHEL 9's control maps this rule to the same item",
	"dir_perms_world_writable_sticky_bits ubuntu2404 7.1.11": "as Debian 12",
	"file_cron_allow_exists debian12 2.4.1.8":                "Debian 12's control lists file_cron_allow_exists under 2.4.1.2 (/etc/crontab permissions); Ubuntu 24.04 and RHEL 9 map it to 2.4.1.8, whose title this rule checks",
	"coredump_disable_storage debian12 1.5.3":                "Debian 12 1.5.3 covers systemd-coredump (Storage=none, ProcessSizeMax=0 when installed); CaC maps only limits and sysctl there",
	"coredump_disable_storage ubuntu2404 1.5.3":              "as Debian 12",
	"coredump_disable_backtraces debian12 1.5.3":             "as coredump_disable_storage",
	"coredump_disable_backtraces ubuntu2404 1.5.3":           "as coredump_disable_storage",
	"host_firewall_enabled debian12 4.1.1":                   "CaC maps firewall_single_service_active; the rule names service_ufw_enabled, the id the Debian 12 SSG content (our OpenSCAP peer) has",
	"host_firewall_enabled ubuntu2404 4.1.1":                 "as Debian 12",
	"host_firewall_enabled rhel9 4.1.2":                      "RHEL 9 maps service_firewalld_enabled, which the Debian 12 SSG content lacks; see host_firewall_enabled",
	"package_xinetd_removed rhel9 2.1.19":                    "RHEL 9's control maps no rule to the item",
	"time_sync_configured debian12 2.3.1.1":                  "CaC maps per-daemon rules (chrony, timesyncd, ntp_single_service_active); the rule decides the item across daemons",
	"time_sync_configured ubuntu2404 2.3.1.1":                "as Debian 12",
	"time_sync_configured rhel9 2.3.1":                       "RHEL 9 maps package_chrony_installed; the item is time synchronization in use",
	"chronyd_specify_remote_server debian12 2.3.3.1":         "CaC maps chronyd_configure_pool_and_server (status partial); RHEL 9 maps this rule to its chrony item 2.3.2",
	"chronyd_specify_remote_server ubuntu2404 2.3.3.1":       "as Debian 12",
	"aide_periodic_cron_checking debian12 6.3.2":             "CaC maps aide_periodic_checking_systemd_timer; the rule accepts the timer or a cron job; RHEL 9 maps this rule to 6.1.2",
	"aide_periodic_cron_checking ubuntu2404 6.3.2":           "as Debian 12",
	"no_empty_passwords debian12 5.3.3.4.1":                  "CaC maps the Debian variant no_empty_passwords_unix, absent from the Debian 12 SSG content; RHEL 9 maps no_empty_passwords",
	"no_empty_passwords ubuntu2404 5.3.3.4.1":                "as Debian 12",
}

// cisWindows2022 are the CIS Microsoft Windows Server 2022 Benchmark
// v3.0.0 items the Windows rules cite, as ansible-lockdown's
// Windows-2022-CIS names its tasks at the merge of its benchmark_v3.0.0
// branch (commit 9051723, tasks/ansible_hardening/section*.yml): number,
// level from the task's tags (1: level1-memberserver; 0: only the Next
// Generation Windows Security profile, ngws-memberserver), and title
// (the task names drop the benchmark's quotes, restored here). Other
// public scanners cite the same numbers (18.4.4 SMB v1 server,
// 18.10.56.3.9.4 NLA for the 2022 edition).
var cisWindows2022 = []struct {
	id    string
	level int
	title string
}{
	{"1.1.2", 1, "Ensure 'Maximum password age' is set to '365 or fewer days, but not 0'"},
	{"1.1.4", 1, "Ensure 'Minimum password length' is set to '14 or more character(s)'"},
	{"1.2.1", 1, "Ensure 'Account lockout duration' is set to '15 or more minute(s)'"},
	{"1.2.2", 1, "Ensure 'Account lockout threshold' is set to '5 or fewer invalid logon attempt(s), but not 0'"},
	{"2.3.1.2", 1, "Ensure 'Accounts: Guest account status' is set to 'Disabled' (MS only)"},
	{"2.3.10.2", 1, "Ensure 'Network access: Do not allow anonymous enumeration of SAM accounts' is set to 'Enabled' (MS only)"},
	{"2.3.10.3", 1, "Ensure 'Network access: Do not allow anonymous enumeration of SAM accounts and shares' is set to 'Enabled' (MS only)"},
	{"2.3.11.5", 1, "Ensure 'Network security: Do not store LAN Manager hash value on next password change' is set to 'Enabled'"},
	{"2.3.17.6", 1, "Ensure 'User Account Control: Run all administrators in Admin Approval Mode' is set to 'Enabled'"},
	{"9.1.1", 1, "Ensure 'Windows Firewall: Domain: Firewall state' is set to 'On (recommended)'"},
	{"9.2.1", 1, "Ensure 'Windows Firewall: Private: Firewall state' is set to 'On (recommended)'"},
	{"9.3.1", 1, "Ensure 'Windows Firewall: Public: Firewall state' is set to 'On (recommended)'"},
	{"18.4.4", 1, "Ensure 'Configure SMB v1 server' is set to 'Disabled'"},
	{"18.4.8", 1, "Ensure 'WDigest Authentication' is set to 'Disabled'"},
	{"18.5.1", 1, "Ensure 'MSS: (AutoAdminLogon) Enable Automatic Logon (not recommended)' is set to 'Disabled'"},
	{"18.9.26.2", 0, "Ensure 'Configures LSASS to run as a protected process' is set to 'Enabled: Enabled with UEFI Lock'"},
	{"18.10.56.3.9.4", 1, "Ensure 'Require user authentication for remote connections by using Network Level Authentication' is set to 'Enabled'"},
}

// TestCISWindowsCitations: every Windows citation is a row of
// cisWindows2022 with the rule's level, only Windows rules cite it, and
// the rule's title and the item are about the same setting.
func TestCISWindowsCitations(t *testing.T) {
	cited := 0
	for _, r := range Rules() {
		id := r.References.CISWindows
		win := slices.Contains(r.Applies.Families, FamilyWindows)
		if id == "" {
			if win {
				t.Errorf("%s: a Windows rule without a CIS Windows Server item", r.ID)
			}
			continue
		}
		cited++
		if !win || r.References.CISDebian != "" || r.References.CISRHEL != "" || r.References.ComplianceAsCode != "" {
			t.Errorf("%s cites CIS Windows %s but is for %v (or cites Linux benchmarks too)", r.ID, id, r.Applies.Families)
		}
		i := slices.IndexFunc(cisWindows2022, func(c struct {
			id    string
			level int
			title string
		}) bool {
			return c.id == id
		})
		if i < 0 {
			t.Errorf("%s cites CIS Windows %s, which cisWindows2022 lacks", r.ID, id)
			continue
		}
		if c := cisWindows2022[i]; c.level != r.References.CISLevel {
			t.Errorf("%s: CIS Windows %s %q has level %d, the rule says %d", r.ID, id, c.title, c.level, r.References.CISLevel)
		}
	}
	if cited < 15 {
		t.Errorf("%d rules cite CIS Windows Server 2022, want at least 15", cited)
	}
}

func cisLookup(b cisBench, id string) (cisItem, bool) {
	for _, c := range cisControls {
		if c.bench == b && c.id == id {
			return c, true
		}
	}
	return cisItem{}, false
}

// TestCISCitations: every CIS citation exists in its benchmark, has the
// level the rule reports, is scored (an "(Manual)" item only when CaC maps
// the rule to it), maps to the rule's CaC id or says why not, and applies
// to the rule's families (no Debian item on an rhel-only rule).
func TestCISCitations(t *testing.T) {
	used := map[string]bool{}
	for _, r := range Rules() {
		ref := r.References
		if ref.CISWindows != "" {
			continue // TestCISWindowsCitations
		}
		cites := ref.CISDebian != "" || ref.CISRHEL != ""
		switch {
		case cites && ref.CISLevel != 1 && ref.CISLevel != 2:
			t.Errorf("%s cites CIS but has level %d (want 1 or 2)", r.ID, ref.CISLevel)
		case !cites && ref.CISLevel != 0:
			t.Errorf("%s cites no CIS item but has level %d", r.ID, ref.CISLevel)
		}
		fams := r.Applies.Families
		linux := slices.Contains(fams, FamilyLinux)
		if ref.CISDebian != "" && !linux && !slices.Contains(fams, "debian") {
			t.Errorf("%s is for %v but cites CIS Debian %s", r.ID, fams, ref.CISDebian)
		}
		if ref.CISRHEL != "" && !linux && !slices.Contains(fams, "rhel") {
			t.Errorf("%s is for %v but cites CIS RHEL %s", r.ID, fams, ref.CISRHEL)
		}
		check := func(b cisBench, id string) {
			if id == "" {
				return
			}
			c, ok := cisLookup(b, id)
			if !ok {
				t.Errorf("%s cites %s %s, which cisControls lacks (add the control file's row)", r.ID, b, id)
				return
			}
			if c.level != ref.CISLevel {
				t.Errorf("%s: %s %s is Level %d - Server, the rule says %d", r.ID, b, id, c.level, ref.CISLevel)
			}
			mapped := slices.Contains(c.rules, ref.ComplianceAsCode)
			if strings.HasSuffix(c.title, "(Manual)") && !mapped {
				t.Errorf("%s cites %s %s %q, a Manual item the benchmark does not score", r.ID, b, id, c.title)
			}
			for _, w := range []string{"SELinux", "AppArmor"} {
				if strings.Contains(c.title, w) != strings.Contains(strings.ToLower(r.ID+" "+r.Title), strings.ToLower(w)) {
					t.Errorf("%s cites %s %s %q: one is about %s, the other not", r.ID, b, id, c.title, w)
				}
			}
			key := r.ID + " " + string(b) + " " + id
			if !mapped {
				if cisUnmapped[key] == "" {
					t.Errorf("%s: %s %s (%q) maps %v, not %s; fix the citation or say why in cisUnmapped", r.ID, b, id, c.title, c.rules, ref.ComplianceAsCode)
				}
				used[key] = true
			}
		}
		check(cisDebian12, ref.CISDebian)
		check(cisRHEL9, ref.CISRHEL)
		// CISDebian's numbering is Debian 12's; Ubuntu 24.04 must agree.
		if ref.CISDebian != "" {
			d, _ := cisLookup(cisDebian12, ref.CISDebian)
			u, ok := cisLookup(cisUbuntu2404, ref.CISDebian)
			if !ok || u.title != d.title || u.level != d.level {
				t.Errorf("%s: CIS Ubuntu 24.04 %s is %q (level %d), Debian 12's %q (level %d)", r.ID, ref.CISDebian, u.title, u.level, d.title, d.level)
			}
			check(cisUbuntu2404, ref.CISDebian)
		}
	}
	for k := range cisUnmapped {
		if !used[k] {
			t.Errorf("cisUnmapped %q: no such unmapped citation (stale entry)", k)
		}
	}
}

// TestCISProfilesFollowLevels: cis-level1-server holds exactly the
// non-legacy Level 1 rules, cis-level2-server the Level 1 and Level 2 ones
// (Level 2 extends Level 1), pci-dss the rules citing PCI-DSS.
func TestCISProfilesFollowLevels(t *testing.T) {
	for _, r := range Rules() {
		l := r.References.CISLevel
		in := func(p string) bool { return slices.Contains(r.Profiles, p) }
		if want := !r.Legacy && l == 1; in(names.CISLevel1Server) != want {
			t.Errorf("%s (level %d, legacy %v): in %s = %v, want %v", r.ID, l, r.Legacy, names.CISLevel1Server, in(names.CISLevel1Server), want)
		}
		if want := !r.Legacy && (l == 1 || l == 2); in(names.CISLevel2Server) != want {
			t.Errorf("%s (level %d, legacy %v): in %s = %v, want %v", r.ID, l, r.Legacy, names.CISLevel2Server, in(names.CISLevel2Server), want)
		}
		if want := !r.Legacy && len(r.References.PCIDSS) > 0; in(names.PCIDSS) != want {
			t.Errorf("%s: in %s = %v, want %v", r.ID, names.PCIDSS, in(names.PCIDSS), want)
		}
	}
}
