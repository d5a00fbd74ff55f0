<#
.SYNOPSIS
  mlnx_hca acceptance run under Driver Verifier, in a throwaway Windows 10/11
  VM (Secure Boot off). Run it from an elevated Windows PowerShell 5.1 prompt
  in the kit folder; it reboots the VM twice and resumes by itself after
  each reboot (a scheduled task at logon), then writes results.txt and
  mlnx_hca-acceptance-logs.zip beside itself.

.DESCRIPTION
  Stages (the state file remembers which one is next):
    sign     a throwaway code-signing certificate, trusted (Root,
             TrustedPublisher); the .sys signed (embedded signature) and a
             catalog made and signed; test signing on; reboot.
    install  the root test device installed from the signed package; Driver
             Verifier on for mlnx_hca.sys (/standard: special pool, IRQL
             checking, pool tracking, I/O verification, deadlock detection,
             DMA and security checks, DDI compliance checking); DbgPrint
             shown for all components; reboot.
    run      the checks (README.txt lists them), each PASS or FAIL in
             results.txt, with the Windows build, the driver version, the
             Verifier settings and counters and any bugcheck since the
             install; the logs zipped. With -RealHca INSTANCE-ID (a
             ConnectX-4 or later passed through to the VM, running its own
             driver), the first check is whether Windows lets the driver
             write the HCA's configuration-space gateway at all.
  With -Cleanup (after a run): Verifier reset, test signing off, the test
  device, the certificate and the test user removed; reboot.

  Written for Windows PowerShell 5.1 and nothing else (no modules to
  install). It was not run or parsed where it was written (no Windows, no
  PowerShell there): it is kept plain on purpose, and its first real run is
  the kit's first check.
#>
param(
    [switch]$Cleanup,
    [switch]$NoReboot,
    [string]$RealHca
)

$ErrorActionPreference = 'Stop'
$Kit = Split-Path -Parent $MyInvocation.MyCommand.Path
$Work = Join-Path $env:ProgramData 'mlnx_hca-acceptance'
$StateFile = Join-Path $Work 'state.txt'
$Results = Join-Path $Kit 'results.txt'
$Logs = Join-Path $Work 'logs'
$TaskName = 'mlnx_hca acceptance (resume)'
$HwId = 'root\mlnx_hca_sim'
$HwId4 = 'root\mlnx_hca_sim4'
$Device = '\\.\mlnx_hca0'
$Device4 = '\\.\mlnx_hca1'
$TestUser = 'mlnx_std'
New-Item -ItemType Directory -Force -Path $Work, $Logs | Out-Null
# The real HCA given at the first start, remembered across the reboots.
$RealHcaFile = Join-Path $Work 'realhca.txt'
if ($RealHca) { Set-Content -Path $RealHcaFile -Value $RealHca }
elseif (Test-Path $RealHcaFile) { $RealHca = (Get-Content $RealHcaFile -Raw).Trim() }

function Log([string]$Text) {
    $line = '{0:u} {1}' -f (Get-Date), $Text
    Write-Host $line
    Add-Content -Path (Join-Path $Logs 'acceptance.log') -Value $line
}

function Get-State {
    if (Test-Path $StateFile) { return (Get-Content $StateFile -Raw).Trim() }
    return 'sign'
}

function Set-State([string]$Next) { Set-Content -Path $StateFile -Value $Next }

function Test-Admin {
    $id = [Security.Principal.WindowsIdentity]::GetCurrent()
    return (New-Object Security.Principal.WindowsPrincipal $id).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Get-Build {
    $v = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    return [int]$v.CurrentBuild
}

# The default image needs Windows 10 2004 (build 19041); before, the legacy one.
function Get-DriverFolder {
    if ((Get-Build) -ge 19041) { return Join-Path $Kit 'driver' }
    return Join-Path $Kit 'driver-legacy'
}

function Invoke-Tool([string]$Exe, [string[]]$Arguments, [string]$LogName) {
    $out = Join-Path $Logs $LogName
    $p = Start-Process -FilePath $Exe -ArgumentList $Arguments -NoNewWindow -Wait -PassThru `
        -RedirectStandardOutput $out -RedirectStandardError ($out + '.err')
    return $p.ExitCode
}

function Resume-AfterReboot {
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' `
        -Argument ('-NoProfile -ExecutionPolicy Bypass -File "{0}"' -f $MyInvocation.ScriptName)
    $trigger = New-ScheduledTaskTrigger -AtLogOn
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -RunLevel Highest -Force | Out-Null
    if ($NoReboot) {
        Log 'reboot needed: reboot, log on, and the run resumes'
    } else {
        Log 'rebooting; log on again and the run resumes'
        Restart-Computer -Force
    }
    exit 0
}

function Get-TestDevice {
    return Get-PnpDevice -PresentOnly -ErrorAction SilentlyContinue |
        Where-Object { $_.HardwareID -contains $HwId } | Select-Object -First 1
}

function Restart-TestDevice([string]$InstanceId) {
    if ((Get-Build) -ge 19041) {
        & pnputil.exe /restart-device $InstanceId | Out-Null
    } else {
        Disable-PnpDevice -InstanceId $InstanceId -Confirm:$false
        Enable-PnpDevice -InstanceId $InstanceId -Confirm:$false
    }
    Start-Sleep -Seconds 2
}

# ------------------------------------------------------------------ stages

function Step-Sign {
    if (-not (Test-Admin)) { throw 'run from an elevated prompt' }
    $secureBoot = $false
    try { $secureBoot = Confirm-SecureBootUEFI } catch { $secureBoot = $false }
    if ($secureBoot) { throw 'Secure Boot is on: test signing cannot be enabled. Turn it off in the VM firmware.' }

    $cert = New-SelfSignedCertificate -Type CodeSigningCert -Subject 'CN=mlnx_hca acceptance (throwaway)' `
        -CertStoreLocation 'Cert:\LocalMachine\My' -NotAfter (Get-Date).AddDays(30)
    $cer = Join-Path $Work 'throwaway.cer'
    Export-Certificate -Cert $cert -FilePath $cer | Out-Null
    Import-Certificate -FilePath $cer -CertStoreLocation 'Cert:\LocalMachine\Root' | Out-Null
    Import-Certificate -FilePath $cer -CertStoreLocation 'Cert:\LocalMachine\TrustedPublisher' | Out-Null
    Set-Content -Path (Join-Path $Work 'thumbprint.txt') -Value $cert.Thumbprint

    $pkg = Join-Path $Work 'package'
    if (Test-Path $pkg) { Remove-Item -Recurse -Force $pkg }
    New-Item -ItemType Directory -Path $pkg | Out-Null
    Copy-Item -Path (Join-Path (Get-DriverFolder) '*') -Destination $pkg
    $sys = Join-Path $pkg 'mlnx_hca.sys'
    $sig = Set-AuthenticodeSignature -FilePath $sys -Certificate $cert -HashAlgorithm SHA256
    if ($sig.Status -ne 'Valid') { throw ('signing mlnx_hca.sys: ' + $sig.StatusMessage) }
    $cat = Join-Path $pkg 'mlnx_hca.cat'
    New-FileCatalog -Path $pkg -CatalogFilePath $cat -CatalogVersion 2.0 | Out-Null
    $sig = Set-AuthenticodeSignature -FilePath $cat -Certificate $cert -HashAlgorithm SHA256
    if ($sig.Status -ne 'Valid') { throw ('signing the catalog: ' + $sig.StatusMessage) }
    Log ('signed ' + $sys + ' and ' + $cat)

    & bcdedit.exe /set testsigning on | Out-Null
    if ($LASTEXITCODE -ne 0) { throw 'bcdedit /set testsigning on failed' }
    Set-State 'install'
    Resume-AfterReboot
}

function Step-Install {
    $pkg = Join-Path $Work 'package'
    $inf = Join-Path $pkg 'mlnx_hca.inf'
    $rc = Invoke-Tool (Join-Path $Kit 'tools\uninstall.exe') @($HwId) 'uninstall-stale.txt'
    $rc = Invoke-Tool (Join-Path $Kit 'tools\uninstall.exe') @($HwId4) 'uninstall-stale4.txt'
    $rc = Invoke-Tool (Join-Path $Kit 'tools\install.exe') @($inf, $HwId) 'install.txt'
    if ($rc -ne 0) { throw ('install.exe failed (' + $rc + '): see ' + (Join-Path $Logs 'install.txt')) }
    $rc = Invoke-Tool (Join-Path $Kit 'tools\install.exe') @($inf, $HwId4) 'install4.txt'
    if ($rc -ne 0) { throw ('install.exe failed (' + $rc + '): see ' + (Join-Path $Logs 'install4.txt')) }
    Log 'root test devices installed (a simulated ConnectX-3 and ConnectX-4)'
    if ($RealHca) {
        # mlnx_hca as a lower filter of the real HCA, below its own driver.
        $rc = Invoke-Tool (Join-Path $Kit 'tools\mlnx_hca_filter.exe') @('add', '--inf', $inf, $RealHca) 'filter-add.txt'
        Log ('mlnx_hca_filter.exe add ' + $RealHca + ': ' + $rc + ' (the device restarts with the filter after the reboot)')
    }
    & verifier.exe /standard /driver mlnx_hca.sys | Out-File (Join-Path $Logs 'verifier-enable.txt')
    # DbgPrint of every component at every level, kept for the kernel logger.
    $filter = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter'
    New-Item -Force -Path $filter | Out-Null
    Set-ItemProperty -Path $filter -Name 'DEFAULT' -Value 0xF -Type DWord
    Set-Content -Path (Join-Path $Work 'installed.txt') -Value (Get-Date -Format u)
    Set-State 'run'
    Resume-AfterReboot
}

$Checks = New-Object System.Collections.ArrayList
function Skip([string]$Name, [string]$Detail) {
    [void]$Checks.Add(('SKIP  {0}  {1}' -f $Name, $Detail))
    Log ('SKIP {0} {1}' -f $Name, $Detail)
}

function Record([string]$Name, [bool]$Pass, [string]$Detail) {
    $word = 'FAIL'
    if ($Pass) { $word = 'PASS' }
    [void]$Checks.Add(('{0}  {1}  {2}' -f $word, $Name, $Detail))
    Log ('{0} {1} {2}' -f $word, $Name, $Detail)
}

function Step-Run {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
    $tools = Join-Path $Kit 'tools'
    $client = Join-Path $tools 'client.exe'
    $client32 = Join-Path $tools 'client32.exe'
    $crspace = Join-Path $tools 'crspace.exe'

    # Debug output: the kernel logger with DbgPrint events (0x40000).
    $etl = Join-Path $Logs 'dbgprint.etl'
    & logman.exe start 'NT Kernel Logger' -p 'Windows Kernel Trace' 0x40000 -o $etl -ets | Out-Null
    $tracing = ($LASTEXITCODE -eq 0)

    # The first check, on a real ConnectX-4 or later: does Windows let the
    # driver write the configuration-space gateway (a capability in the
    # list, which Windows says drivers must not modify)? The filter's start
    # found and probed the gateway only if its writes went through; then its
    # control device exists and the gateway client reads the device.
    if ($RealHca) {
        $real = Get-PnpDevice -InstanceId $RealHca -ErrorAction SilentlyContinue
        $rc = Invoke-Tool (Join-Path $tools 'mlnx_hca_filter.exe') @('list') 'filter-list.txt'
        # The control device the filter made for it, named in the HCA's
        # hardware key (Device Parameters\MlnxHcaControlDevice).
        $key = 'HKLM:\SYSTEM\CurrentControlSet\Enum\' + $RealHca + '\Device Parameters'
        $control = (Get-ItemProperty -Path $key -Name 'MlnxHcaControlDevice' -ErrorAction SilentlyContinue).MlnxHcaControlDevice
        if ($control) {
            $rc = Invoke-Tool $client @('--gateway-real', $control) 'gateway-real.txt'
            Record 'gateway-config-writes' ($rc -eq 0) ('real HCA ' + $RealHca + ': the filter serves it as ' + $control + `
                '; client.exe --gateway-real: ' + $rc + ' failure(s), logs\gateway-real.txt')
        } else {
            Record 'gateway-config-writes' $false ('real HCA ' + $RealHca + ' (' + $(if ($real) { $real.Status } else { 'missing' }) + `
                '): no control device: the filter did not load, or its gateway probe failed (did Windows refuse the writes to the capability?); see the DbgPrint log')
        }
    } else {
        Skip 'gateway-config-writes' 'no real ConnectX-4 or later given (-RealHca INSTANCE-ID): not proven on this run'
    }

    $settings = (& verifier.exe /querysettings) -join "`n"
    Set-Content -Path (Join-Path $Logs 'verifier-settings.txt') -Value $settings
    Record 'verifier-on' ($settings -match 'mlnx_hca\.sys') 'Driver Verifier lists mlnx_hca.sys'

    $dev = Get-TestDevice
    Record 'device-started' (($dev -ne $null) -and ($dev.Status -eq 'OK')) ('root test device: ' + $(if ($dev) { $dev.InstanceId + ' ' + $dev.Status } else { 'missing' }))

    # The conformance client, 64- and 32-bit, with real maps.
    $rc = Invoke-Tool $client @('--windows', $Device) 'client64.txt'
    Record 'client-x64' ($rc -eq 0) ('client.exe --windows: ' + $rc + ' failure(s), logs\client64.txt')
    $rc = Invoke-Tool $client32 @('--windows', $Device) 'client32.txt'
    Record 'client-x86' ($rc -eq 0) ('client32.exe --windows (WOW64, views below 4 GiB): ' + $rc + ' failure(s), logs\client32.txt')

    # crspace.exe: read, write, dump, info.
    if (Test-Path $crspace) {
        $rc = Invoke-Tool $crspace @('read', '0xf0014') 'crspace-read.txt'
        $text = Get-Content (Join-Path $Logs 'crspace-read.txt') -Raw
        Record 'crspace-read' (($rc -eq 0) -and ($text -match '^0x000f0014 0x000101f5')) $text.Trim()
        $rc1 = Invoke-Tool $crspace @('write', '0x3000', '0xdeadbeef') 'crspace-write.txt'
        $rc2 = Invoke-Tool $crspace @('read', '0x3000', '--value') 'crspace-readback.txt'
        $text = Get-Content (Join-Path $Logs 'crspace-readback.txt') -Raw
        Record 'crspace-write' (($rc1 -eq 0) -and ($rc2 -eq 0) -and ($text -match '^0xdeadbeef')) $text.Trim()
        $rc = Invoke-Tool $crspace @('dump', '0xf0000', '0x100') 'crspace-dump.txt'
        $lines = @(Get-Content (Join-Path $Logs 'crspace-dump.txt')).Count
        Record 'crspace-dump' (($rc -eq 0) -and ($lines -eq 64)) ('dump of 256 bytes: ' + $lines + ' lines')
        $rc = Invoke-Tool $crspace @('info') 'crspace-info.txt'
        $text = Get-Content (Join-Path $Logs 'crspace-info.txt') -Raw
        Record 'crspace-info' (($rc -eq 0) -and ($text -match 'ConnectX-3')) 'logs\crspace-info.txt'
    } else {
        Record 'crspace' $false 'crspace.exe is not in the kit'
    }
    # mstflint's mcra and mstdump over mlnx_hca (mtcr backend).
    $mcra = Join-Path $tools 'mcra.exe'
    if (Test-Path $mcra) {
        $rc = Invoke-Tool $mcra @('mlnx_hca0', '0xf0014') 'mcra.txt'
        $text = Get-Content (Join-Path $Logs 'mcra.txt') -Raw
        Record 'mcra-read' (($rc -eq 0) -and ($text -match '^0x000101f5')) $text.Trim()
        $rc1 = Invoke-Tool $mcra @('mt4099_pci_cr0', '0x3004', '0xcafe0001') 'mcra-write.txt'
        $rc2 = Invoke-Tool $crspace @('read', '0x3004', '--value') 'mcra-readback.txt'
        $text = Get-Content (Join-Path $Logs 'mcra-readback.txt') -Raw
        Record 'mcra-write' (($rc1 -eq 0) -and ($rc2 -eq 0) -and ($text -match '^0xcafe0001')) ('crspace reads ' + $text.Trim())
    } else {
        Record 'mcra' $false 'mcra.exe is not in the kit'
    }
    $mstdump = Join-Path $tools 'mstdump.exe'
    # mstdump NAME: the whole dump, from the tools folder (its databases,
    # mstdump_dbs\, are found relative to it); WANT lines.
    $dumpCheck = {
        param([string]$Check, [string]$Name, [int]$Want, [string]$Db)
        if (-not (Test-Path $mstdump)) { Record $Check $false 'mstdump.exe is not in the kit'; return }
        Push-Location $tools
        $rc = Invoke-Tool $mstdump @($Name) ($Check + '.txt')
        Pop-Location
        $lines = @(Get-Content (Join-Path $Logs ($Check + '.txt'))).Count
        Record $Check (($rc -eq 0) -and ($lines -eq $Want)) ('mstdump ' + $Name + ': ' + $lines + ' lines (' + $Db + ': ' + $Want + ')')
    }
    & $dumpCheck 'mstdump' 'mlnx_hca0' 35572 'ConnectX3.csv'

    # The simulated ConnectX-4 (root\mlnx_hca_sim4): the gateway codes end
    # to end under Verifier, and the tools on them.
    $dev4 = Get-PnpDevice -PresentOnly -ErrorAction SilentlyContinue |
        Where-Object { $_.HardwareID -contains $HwId4 } | Select-Object -First 1
    Record 'device4-started' (($dev4 -ne $null) -and ($dev4.Status -eq 'OK')) ('simulated ConnectX-4: ' + $(if ($dev4) { $dev4.InstanceId + ' ' + $dev4.Status } else { 'missing' }))
    $rc = Invoke-Tool $client @('--gateway', $Device4) 'client-gateway.txt'
    Record 'client-gateway' ($rc -eq 0) ('client.exe --gateway (blocks, lease, tool locks, a killed lock holder): ' + $rc + ' failure(s), logs\client-gateway.txt')
    if (Test-Path $crspace) {
        $rc = Invoke-Tool $crspace @('--device', $Device4, 'info') 'crspace-info4.txt'
        $text = Get-Content (Join-Path $Logs 'crspace-info4.txt') -Raw
        Record 'crspace-info4' (($rc -eq 0) -and ($text -match 'ConnectX-4') -and ($text -match 'gateway')) 'logs\crspace-info4.txt'
    }
    & $dumpCheck 'mstdump4' 'mt4115_pci_cr1' 44092 'ConnectX4.csv'

    # A standard user: no open at all; then, after the documented read
    # grant, read-only only.
    $password = -join ((48..57) + (65..90) + (97..122) | Get-Random -Count 20 | ForEach-Object { [char]$_ }) + '!a1'
    $secure = ConvertTo-SecureString $password -AsPlainText -Force
    if (-not (Get-LocalUser -Name $TestUser -ErrorAction SilentlyContinue)) {
        New-LocalUser -Name $TestUser -Password $secure -AccountNeverExpires | Out-Null
    } else {
        Set-LocalUser -Name $TestUser -Password $secure
    }
    $credential = New-Object System.Management.Automation.PSCredential ($env:COMPUTERNAME + '\' + $TestUser), $secure
    $asUser = {
        param([string]$Mode, [string]$LogName)
        $out = Join-Path $Logs $LogName
        $p = Start-Process -FilePath $client -ArgumentList @('--user', $Mode, $Device) -Credential $credential `
            -WorkingDirectory $env:SystemRoot -Wait -PassThru -RedirectStandardOutput $out -LoadUserProfile
        return $p.ExitCode
    }
    $rc = & $asUser 'none' 'user-none.txt'
    Record 'standard-user-denied' ($rc -eq 0) 'a standard user cannot open the device (logs\user-none.txt)'
    $sid = (New-Object Security.Principal.NTAccount $TestUser).Translate([Security.Principal.SecurityIdentifier]).Value
    $params = 'HKLM:\SYSTEM\CurrentControlSet\Services\mlnx_hca\Parameters'
    New-ItemProperty -Path $params -Name ReadAccess -PropertyType String -Value $sid -Force | Out-Null
    if ($dev) { Restart-TestDevice $dev.InstanceId }
    $rc = & $asUser 'read' 'user-read.txt'
    Record 'standard-user-read-grant' ($rc -eq 0) 'after the read grant: read-only open and map, no read-write (logs\user-read.txt)'
    Remove-ItemProperty -Path $params -Name ReadAccess -ErrorAction SilentlyContinue
    if ($dev) { Restart-TestDevice $dev.InstanceId }

    # Removal while a view lives: vetoed; after the view's process closes
    # its handle: done. (Last: the device stays removed until -Cleanup.)
    if ($dev) {
        $psi = New-Object System.Diagnostics.ProcessStartInfo $client, ('--hold ' + $Device)
        $psi.UseShellExecute = $false
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $holder = [System.Diagnostics.Process]::Start($psi)
        $first = $holder.StandardOutput.ReadLine()
        $held = $holder.StandardOutput.ReadLine()
        Add-Content -Path (Join-Path $Logs 'hold.txt') -Value @($first, $held)
        $rc = Invoke-Tool $client @('--query-remove', $dev.InstanceId) 'remove-while-held.txt'
        Record 'removal-refused-while-mapped' ($rc -eq 1) ((Get-Content (Join-Path $Logs 'remove-while-held.txt') -Raw).Trim())
        $holder.StandardInput.Close()
        $holder.WaitForExit(30000) | Out-Null
        $rc = Invoke-Tool $client @('--query-remove', $dev.InstanceId) 'remove-after-close.txt'
        Record 'removal-after-close' ($rc -eq 0) ((Get-Content (Join-Path $Logs 'remove-after-close.txt') -Raw).Trim())
    }

    if ($tracing) {
        & logman.exe stop 'NT Kernel Logger' -ets | Out-Null
        & tracerpt.exe $etl -o (Join-Path $Logs 'dbgprint.xml') -of XML -y | Out-Null
    }
    (& verifier.exe /query) | Out-File (Join-Path $Logs 'verifier-query.txt')

    # Any bugcheck since the install (a Verifier failure bugchecks).
    $since = [datetime](Get-Content (Join-Path $Work 'installed.txt') -Raw).Trim()
    $bugchecks = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; Id = 1001; StartTime = $since } -ErrorAction SilentlyContinue |
        Where-Object { $_.ProviderName -match 'BugCheck|WER-SystemErrorReporting' })
    Record 'no-bugcheck' ($bugchecks.Count -eq 0) ($bugchecks.Count.ToString() + ' bugcheck event(s) since the install')
    if ($bugchecks.Count -gt 0) { $bugchecks | Format-List | Out-File (Join-Path $Logs 'bugchecks.txt') }

    Write-Results
    Set-State 'done'
}

function Write-Results {
    $v = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $inf = Get-Content (Join-Path (Get-DriverFolder) 'mlnx_hca.inf') | Where-Object { $_ -match '^DriverVer' } | Select-Object -First 1
    $failures = @($Checks | Where-Object { $_ -like 'FAIL*' }).Count
    $skipped = @($Checks | Where-Object { $_ -like 'SKIP*' }).Count
    $head = @(
        'mlnx_hca acceptance results',
        ('date            ' + (Get-Date -Format u)),
        ('windows         ' + $v.ProductName + ' ' + $v.DisplayVersion + ' build ' + $v.CurrentBuild + '.' + $v.UBR),
        ('driver          ' + (Split-Path -Leaf (Get-DriverFolder)) + ', ' + $inf),
        ('checks          ' + $Checks.Count + ', failed ' + $failures + ', skipped ' + $skipped),
        ''
    )
    Set-Content -Path $Results -Value ($head + $Checks)
    Copy-Item $Results $Logs
    Compress-Archive -Path (Join-Path $Logs '*') -DestinationPath (Join-Path $Kit 'mlnx_hca-acceptance-logs.zip') -Force
    Log ('results: ' + $Results + ' (' + $failures + ' failed)')
}

function Step-Cleanup {
    & verifier.exe /reset | Out-Null
    & (Join-Path $Kit 'tools\uninstall.exe') $HwId | Out-Null
    & (Join-Path $Kit 'tools\uninstall.exe') $HwId4 | Out-Null
    if ($RealHca) { & (Join-Path $Kit 'tools\mlnx_hca_filter.exe') remove $RealHca | Out-Null }
    Remove-Item -Path $RealHcaFile -ErrorAction SilentlyContinue
    & bcdedit.exe /set testsigning off | Out-Null
    Remove-LocalUser -Name $TestUser -ErrorAction SilentlyContinue
    $thumb = Join-Path $Work 'thumbprint.txt'
    if (Test-Path $thumb) {
        $t = (Get-Content $thumb -Raw).Trim()
        foreach ($store in @('My', 'Root', 'TrustedPublisher')) {
            Remove-Item -Path ('Cert:\LocalMachine\' + $store + '\' + $t) -ErrorAction SilentlyContinue
        }
    }
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
    Set-State 'sign'
    Log 'cleaned up: Verifier reset, test signing off, test device, user and certificate removed; reboot to finish'
    if (-not $NoReboot) { Restart-Computer -Force }
}

if ($Cleanup) { Step-Cleanup; exit 0 }
switch (Get-State) {
    'sign' { Step-Sign }
    'install' { Step-Install }
    'run' { Step-Run }
    'done' { Log ('already done: see ' + $Results + ' (run with -Cleanup to undo, or delete ' + $StateFile + ' to start over)') }
}
