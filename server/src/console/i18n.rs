//! Every string the console shows, in one catalog: English and Simplified Chinese. The
//! language follows the browser's `Accept-Language` unless the user picked one (cookie).

use fieldsync_proto::report::Lang as ReportLang;

/// A console language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The same tags the printable report understands (`report::Lang::parse`).
    pub fn parse(code: &str) -> Option<Lang> {
        ReportLang::parse(code).map(|l| match l {
            ReportLang::En => Lang::En,
            ReportLang::ZhCn => Lang::ZhCn,
        })
    }

    /// The best match for an `Accept-Language` header: highest q first, English when
    /// nothing matches.
    pub fn negotiate(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("");
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(l) = Lang::parse(tag) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, l));
                }
            }
        }
        best.map(|b| b.1).unwrap_or(Lang::En)
    }

    /// The string for `key`. A key missing from the catalog shows as `⟦key⟧`, which the
    /// tests look for in every rendered page.
    pub fn t(self, key: &str) -> &'static str {
        match CATALOG.iter().find(|e| e.0 == key) {
            Some((_, en, zh)) => match self {
                Lang::En => en,
                Lang::ZhCn => zh,
            },
            None => {
                debug_assert!(false, "console string {key:?} is not in the catalog");
                "⟦missing⟧"
            }
        }
    }
}

/// `(key, English, 简体中文)`.
pub static CATALOG: &[(&str, &str, &str)] = &[
    ("app.title", "fieldsync console", "fieldsync 调度台"),
    ("nav.board", "Board", "工单看板"),
    ("nav.new", "New order", "新建工单"),
    ("nav.conflicts", "Conflicts", "冲突"),
    ("nav.engineers", "Engineers", "工程师"),
    ("nav.logout", "Log out", "退出登录"),
    ("nav.customers", "Customers", "客户"),
    ("cu.title", "Customers", "客户"),
    ("cu.customer", "Customer:", "客户："),
    ("cu.search", "Search by name, id or tier", "按名称、编号或等级搜索"),
    ("cu.none", "No customers match.", "没有匹配的客户。"),
    ("cu.not_found", "No such customer.", "没有这个客户。"),
    ("cu.name", "Name", "姓名/名称"),
    ("cu.tier", "Tier", "客户等级"),
    ("cu.phone", "Phone", "电话"),
    ("cu.email", "Email", "电子邮件"),
    ("cu.address", "Address", "地址"),
    ("cu.role", "Role", "职务"),
    ("cu.contacts", "Contacts", "联系人"),
    ("cu.edit_contacts", "Edit contacts", "编辑联系人"),
    ("cu.contacts_hint", "One person per line: name | role | phone | email (role, phone and email optional).", "每行一人：姓名 | 职务 | 电话 | 电子邮件（职务、电话和邮件可省略）。"),
    ("cu.save_contacts", "Save contacts", "保存联系人"),
    ("cu.contacts_saved", "Contacts saved.", "联系人已保存。"),
    ("cu.err_contacts", "The contact list cannot be read:", "联系人列表格式有误："),
    ("cu.sites", "Sites", "现场"),
    ("cu.assets", "Assets", "设备"),
    ("cu.warranty_end", "warranty until", "保修至"),
    ("cu.contracts", "Contracts", "服务合同"),
    ("cu.orders", "Recent orders", "近期工单"),
    ("tier.standard", "Standard", "标准"),
    ("tier.silver", "Silver", "银牌"),
    ("tier.gold", "Gold", "金牌"),
    ("tier.platinum", "Platinum", "白金"),
    ("cl.title", "Communication log", "沟通记录"),
    ("cl.none", "No calls, emails or visits logged yet.", "尚无电话、邮件或拜访记录。"),
    ("cl.channel", "Channel", "方式"),
    ("cl.channel_call", "Call", "电话"),
    ("cl.channel_email", "Email", "邮件"),
    ("cl.channel_visit", "Visit", "拜访"),
    ("cl.channel_other", "Other", "其他"),
    ("cl.direction", "Direction", "方向"),
    ("cl.direction_in", "From the customer", "客户来电/来信"),
    ("cl.direction_out", "To the customer", "我方联系客户"),
    ("cl.at", "When", "时间"),
    ("cl.contact", "Spoke with", "联系人"),
    ("cl.with", "with", "联系人"),
    ("cl.order", "Order", "工单"),
    ("cl.no_order", "— not about one order —", "— 不针对具体工单 —"),
    ("cl.summary", "Summary", "摘要"),
    ("cl.add", "Log it", "记录"),
    ("cl.logged", "Logged. The engineer holding the order sees it at their next sync.", "已记录。负责该工单的工程师下次同步即可看到。"),
    ("cl.logged_by", "logged by", "记录人"),
    ("cl.add_on_customer", "Log a call, email or visit on the customer's page", "在客户页面记录电话、邮件或拜访"),
    ("cl.err_channel", "Choose how the customer was reached.", "请选择联系方式。"),
    ("cl.err_summary", "Write a summary of what was said.", "请填写沟通摘要。"),
    ("nav.kb", "Knowledge base", "知识库"),
    ("kb.title", "Knowledge base", "知识库"),
    ("kb.new", "New article", "新建文章"),
    ("kb.edit", "Article:", "文章："),
    ("kb.search", "Search", "搜索"),
    ("kb.search_in", "In", "范围"),
    ("kb.search_go", "Search", "搜索"),
    ("kb.in_all", "Everything", "全部"),
    ("kb.in_title", "Title", "标题"),
    ("kb.in_tags", "Tags", "标签"),
    ("kb.in_models", "Models", "设备型号"),
    ("kb.in_fault_codes", "Fault codes", "故障代码"),
    ("kb.show_retired", "Include retired articles", "包括已停用的文章"),
    ("kb.articles", "articles", "篇文章"),
    ("kb.none", "No articles match.", "没有匹配的文章。"),
    ("kb.incomplete", "There are more articles than this page reads; narrow the search.", "文章数量超过本页读取上限；请缩小搜索范围。"),
    ("kb.title_field", "Title", "标题"),
    ("kb.tags", "Tags", "标签"),
    ("kb.models", "Equipment models", "适用设备型号"),
    ("kb.fault_codes", "Fault codes", "故障代码"),
    ("kb.body", "Text (Markdown)", "正文（Markdown）"),
    ("kb.list_hint", "Separate entries with commas.", "多项之间用逗号分隔。"),
    ("kb.body_hint", "Markdown: # heading, - list, 1. steps, **bold**, *italic*, `code`, ``` for code blocks.", "Markdown：# 标题、- 列表、1. 步骤、**粗体**、*斜体*、`代码`、``` 代码块。"),
    ("kb.retire", "Retired (hidden from engineers' search)", "已停用（工程师搜索中不再显示）"),
    ("kb.retire_hint", "Retiring keeps the article and its history; untick to bring it back.", "停用会保留文章及其历史；取消勾选即可恢复。"),
    ("kb.retired", "Retired", "已停用"),
    ("kb.retired_note", "This article is retired: engineers no longer find it.", "此文章已停用：工程师将搜索不到它。"),
    ("kb.save", "Save article", "保存文章"),
    ("kb.preview", "Preview", "预览"),
    ("kb.id", "Article id", "文章编号"),
    ("kb.back", "All articles", "全部文章"),
    ("kb.created", "Article created. Engineers receive it at their next sync.", "文章已创建。工程师下次同步即可收到。"),
    ("kb.saved", "Article saved. Engineers receive it at their next sync.", "文章已保存。工程师下次同步即可收到。"),
    ("kb.unchanged", "Nothing changed.", "没有更改。"),
    ("kb.not_found", "No such article.", "没有这篇文章。"),
    ("kb.err_title", "Give the article a title.", "请填写文章标题。"),
    ("kb.err_body", "Write the article's text.", "请填写文章正文。"),
    ("kb.err_stale_form", "This form is from an older page and cannot tell what you changed. Reload the article and edit again.", "此表单来自旧页面，无法判断您的修改。请重新打开文章后再编辑。"),
    ("kb.conflict_hint", "Someone else changed the same field while it was being edited. Both versions are kept; choose one.", "编辑期间有人修改了同一字段。两个版本都已保留；请选择其一。"),
    ("nav.language", "Language", "语言"),
    ("nav.skip", "Skip to content", "跳到正文"),
    ("login.title", "Sign in", "登录"),
    ("login.user", "User name", "用户名"),
    ("login.password", "Password", "密码"),
    ("login.submit", "Sign in", "登录"),
    ("login.bad", "Unknown user or wrong password.", "用户名或密码错误。"),
    ("login.office_only", "Only dispatchers and admins can use the console. Engineers use the fieldsync app.", "只有调度员和管理员可以使用调度台。工程师请使用 fieldsync 应用。"),
    ("login.expired", "Your session has ended. Please sign in again.", "会话已结束，请重新登录。"),
    ("err.csrf", "This form has expired or did not come from the console. Reload the page and try again.", "表单已过期或并非来自调度台。请刷新页面后重试。"),
    ("err.login_csrf", "This sign-in form has expired or did not come from this console. Please sign in again.", "此登录表单已过期或并非来自本调度台。请重新登录。"),
    ("err.too_long", "Too long: at most {max} characters.", "过长：最多 {max} 个字符。"),
    ("err.control_chars", "Remove the control characters (tabs, line breaks).", "请删除控制字符（制表符、换行符）。"),
    ("err.no_user", "No such user.", "没有这个用户。"),
    ("err.not_found", "No such work order.", "没有这个工单。"),
    ("err.required", "Required.", "必填。"),
    ("err.unknown_customer", "No customer with this id.", "没有此编号的客户。"),
    ("err.unknown_site", "No site with this id.", "没有此编号的现场。"),
    ("err.unknown_asset", "No asset with this id.", "没有此编号的设备。"),
    ("err.priority", "Choose a priority from 1 to 4.", "请选择 1 到 4 的优先级。"),
    ("err.time", "Enter a date and time (YYYY-MM-DD HH:MM).", "请输入日期和时间（YYYY-MM-DD HH:MM）。"),
    ("err.end_before_start", "The visit must end after it starts.", "结束时间必须晚于开始时间。"),
    ("err.pick_engineer", "Choose an engineer.", "请选择工程师。"),
    ("err.confirm_reassign", "This order is assigned to someone else. Tick the box to reassign it; their unsynced work is kept.", "该工单已分配给其他人。勾选此项以重新分配；其尚未同步的工作会保留。"),
    ("err.refused", "The server refused the change:", "服务器拒绝了此更改："),
    ("err.already_resolved", "Someone already resolved this conflict.", "此冲突已被他人解决。"),
    ("board.title", "Work orders", "工单"),
    ("board.filter", "Filter", "筛选"),
    ("board.apply", "Apply", "应用"),
    ("board.clear", "Clear", "清除"),
    ("board.any", "Any", "全部"),
    ("board.all", "All", "全部"),
    ("board.sort", "Sort by", "排序"),
    ("board.sort.recent", "Last changed", "最近更改"),
    ("board.sort.priority", "Priority", "优先级"),
    ("board.sort.due", "Due time", "到期时间"),
    ("board.sort.status", "Status", "状态"),
    ("board.empty", "No work orders match.", "没有符合条件的工单。"),
    ("board.showing", "Showing", "显示"),
    ("board.of", "of", "共"),
    ("board.prev", "Previous page", "上一页"),
    ("board.next", "Next page", "下一页"),
    ("board.counts", "Orders per status", "各状态工单数"),
    ("board.live", "Live: updates appear as engineers sync.", "实时：工程师同步后自动更新。"),
    ("board.behind", "The board is still catching up with the latest changes (after a restart or a large import); reload in a moment for the full list. Order pages are always current.", "看板仍在同步最新更改（重启或大批导入之后）；请稍后刷新查看完整列表。工单详情页始终为最新。"),
    ("field.id", "Order", "工单"),
    ("field.status", "Status", "状态"),
    ("field.priority", "Priority", "优先级"),
    ("field.description", "Description", "描述"),
    ("field.engineer", "Engineer", "工程师"),
    ("field.customer", "Customer", "客户"),
    ("field.site", "Site", "现场"),
    ("field.asset", "Asset", "设备"),
    ("field.due", "Due", "到期"),
    ("field.updated", "Changed", "更改时间"),
    ("field.channel", "Channel", "渠道"),
    ("field.reporter", "Reporter contact", "报修人联系方式"),
    ("field.scheduled", "Scheduled visit", "预约上门"),
    ("field.start", "Start (UTC)", "开始（UTC）"),
    ("field.end", "End (UTC)", "结束（UTC）"),
    ("field.resolution", "Resolution", "处理结果"),
    ("field.fault_code", "Fault code", "故障代码"),
    ("field.arrived", "Arrived", "到达时间"),
    ("field.completed", "Completed", "完成时间"),
    ("field.cancelled", "Cancelled", "已取消"),
    ("field.unassigned", "Unassigned", "未分配"),
    ("status.open", "Open", "待处理"),
    ("status.en-route", "En route", "在途"),
    ("status.on-site", "On site", "在现场"),
    ("status.on-hold", "On hold", "暂停"),
    ("status.completed", "Completed", "已完成"),
    ("priority.1", "1 · Critical", "1 · 紧急"),
    ("priority.2", "2 · High", "2 · 高"),
    ("priority.3", "3 · Normal", "3 · 普通"),
    ("priority.4", "4 · Low", "4 · 低"),
    ("channel.phone", "Phone", "电话"),
    ("channel.email", "Email", "邮件"),
    ("channel.web", "Web", "网页"),
    ("channel.on-site", "On site", "现场"),
    ("channel.preventive", "Preventive maintenance", "预防性维护"),
    ("intake.title", "New work order", "新建工单"),
    ("intake.search_hint", "Type a name or id to search.", "输入名称或编号搜索。"),
    ("intake.submit", "Create order", "创建工单"),
    ("intake.created", "Work order created.", "工单已创建。"),
    ("detail.title", "Work order", "工单"),
    ("sla.title", "SLA", "服务级别"),
    ("sla.state", "State", "状态"),
    ("sla.deadline", "Deadline", "截止时间"),
    ("sla.response", "Response", "响应"),
    ("sla.arrival", "On-site arrival", "到场"),
    ("sla.resolution", "Resolution", "解决"),
    ("sla.running", "Running", "计时中"),
    ("sla.at_risk", "At risk", "即将超时"),
    ("sla.paused", "Paused (waiting)", "已暂停（等待中）"),
    ("sla.breached", "Breached", "已超时"),
    ("sla.met", "Met", "已达成"),
    ("sla.missed", "Missed", "未达成"),
    ("sla.minutes_left", "min left", "分钟剩余"),
    ("sla.escalated", "SLA breached: escalated to the service manager.", "服务级别已超时：已升级至服务经理。"),
    ("sla.warning", "SLA at risk: act now.", "服务级别即将超时：请立即处理。"),
    ("detail.edit", "Edit", "编辑"),
    ("detail.save", "Save", "保存"),
    ("detail.saved", "Saved.", "已保存。"),
    ("detail.assign", "Assign / schedule", "分配 / 预约"),
    ("detail.report", "Printable service report", "打印服务报告"),
    ("field.work_type", "Type of visit", "服务类型"),
    ("work_type.inspection", "Inspection", "巡检"),
    ("work_type.repair", "Repair", "维修"),
    ("work_type.installation", "Installation", "安装"),
    ("rp.title", "Service report", "服务报告"),
    ("rp.root_cause", "Root cause", "根本原因"),
    ("rp.checklist", "Checklist answers", "检查清单记录"),
    ("rp.time", "Time", "工时"),
    ("rp.labour", "labour", "人工"),
    ("rp.travel", "travel", "路程"),
    ("rp.signed", "Customer sign-off", "客户签字"),
    ("rp.rating", "Satisfaction", "满意度"),
    ("cp.title", "Complaints", "投诉"),
    ("cp.text", "Customer complaint", "客户投诉内容"),
    ("cp.add", "Log complaint", "登记投诉"),
    ("cp.follow_up", "Schedule follow-up visit", "安排回访"),
    ("cp.follow_up_order", "Follow-up visit", "回访工单"),
    ("cp.logged", "Complaint logged.", "投诉已登记。"),
    ("cp.follow_up_created", "Follow-up visit created: assign it.", "回访工单已创建，请分配。"),
    ("cp.follow_up_desc", "Follow-up visit after a complaint on", "投诉回访，原工单"),
    ("detail.notes", "Notes", "备注"),
    ("detail.parts", "Parts used", "使用的备件"),
    ("detail.photos", "Photos", "照片"),
    ("detail.no_photos", "No photos yet.", "暂无照片。"),
    ("photo.waiting", "Waiting for upload", "等待上传"),
    ("photo.taken", "Taken", "拍摄于"),
    ("photo.open", "Open full size", "查看原图"),
    ("photo.file", "Open file", "打开文件"),
    ("photo.untitled", "Photo", "照片"),
    ("detail.none", "None.", "无。"),
    ("detail.voided", "voided", "已作废"),
    ("detail.timeline", "Timeline", "变更记录"),
    ("detail.conflicts", "Conflicts", "冲突"),
    ("detail.stale", "Changed elsewhere since you opened this page; your save was kept and the other value is listed as a conflict.", "在你打开本页后此工单已被他人更改；你的保存已生效，另一值作为冲突列出。"),
    ("tl.event", "Happened (on site)", "发生时间（现场）"),
    ("tl.arrived", "Arrived at server", "到达服务器"),
    ("tl.who", "Who", "操作人"),
    ("tl.device", "Device", "设备"),
    ("tl.change", "Change", "变更"),
    ("tl.server", "console / API", "调度台 / API"),
    ("tl.rejected", "refused", "被拒绝"),
    ("tl.created", "created", "创建"),
    ("tl.set", "set", "修改"),
    ("cf.field", "Field", "字段"),
    ("cf.winner", "Current value (won)", "当前值（胜出）"),
    ("cf.loser", "Other value (lost)", "另一值（落选）"),
    ("cf.keep", "Keep current", "保留当前值"),
    ("cf.use_other", "Use other value", "采用另一值"),
    ("cf.resolved", "Resolved", "已解决"),
    ("cf.by", "by", "由"),
    ("cf.inbox", "Unresolved conflicts", "未解决的冲突"),
    ("cf.none", "No unresolved conflicts.", "没有未解决的冲突。"),
    ("cf.order", "Order", "工单"),
    ("cf.resolved_msg", "Conflict resolved; the choice syncs to the engineer.", "冲突已解决；结果将同步给工程师。"),
    ("as.title", "Assign and schedule", "分配与预约"),
    ("as.candidates", "Engineers", "候选工程师"),
    ("as.skills", "Skills", "技能"),
    ("as.region", "Region", "区域"),
    ("as.load", "Open orders", "未完成工单"),
    ("as.online", "Online now", "在线"),
    ("as.last_sync", "Last synced", "上次同步"),
    ("as.never", "Never", "从未"),
    ("as.match", "matches the asset", "与设备匹配"),
    ("as.current", "current", "当前"),
    ("as.confirm", "Reassign from the current engineer", "从当前工程师处重新分配"),
    ("as.submit", "Assign", "分配"),
    ("as.unassign", "Unassign", "取消分配"),
    ("as.done", "Assignment saved; it reaches the engineer's device when online.", "分配已保存；工程师设备在线时即可收到。"),
    ("eng.title", "Engineers and devices", "工程师与设备"),
    ("eng.name", "Name", "姓名"),
    ("eng.role", "Role", "角色"),
    ("eng.devices", "Devices", "设备"),
    ("eng.device", "Device", "设备"),
    ("eng.last_seen", "Last seen", "最近同步"),
    ("eng.acked", "Ops received", "已接收操作"),
    ("eng.pending", "Pending (unknown until sync)", "待同步（同步前未知）"),
    ("eng.rejected", "Refused ops", "被拒绝操作"),
    ("eng.skew", "Clock", "时钟"),
    ("eng.skew_warn", "ahead of the server: check the device clock", "超前于服务器：请检查设备时钟"),
    ("eng.skew_ok", "OK", "正常"),
    ("eng.revoke", "Revoke", "吊销"),
    ("eng.revoked", "Revoked", "已吊销"),
    ("eng.revoke_confirm", "Revoke this device? It can no longer sync; the engineer must enroll again.", "确定吊销此设备？它将无法同步，工程师需重新注册。"),
    ("eng.revoked_msg", "Device revoked: its next sync is refused.", "设备已吊销：其下次同步将被拒绝。"),
    ("eng.no_devices", "No devices.", "无设备。"),
    ("eng.profile", "Edit profile", "编辑资料"),
    ("eng.display_name", "Display name", "显示名称"),
    ("eng.skills_hint", "Comma-separated, e.g. chillers, refrigeration, Carrier. Matched against the asset's model in the assignment dialog.", "以逗号分隔，例如：冷水机组, 制冷, Carrier。分配对话框会将其与设备型号匹配。"),
    ("eng.save_profile", "Save profile", "保存资料"),
    ("eng.profile_saved", "Profile saved; the assignment dialog shows it now.", "资料已保存；分配对话框已显示更新。"),
    ("eng.profile_unsupported", "A profile needs a user name of letters, digits, '-' and '_' only.", "只有由字母、数字、“-”和“_”组成的用户名才能保存资料。"),
    ("role.engineer", "Engineer", "工程师"),
    ("role.dispatcher", "Dispatcher", "调度员"),
    ("role.admin", "Admin", "管理员"),
    // Stock (console/stock.rs).
    ("nav.stock", "Stock", "库存"),
    ("st.title", "Stock and requisitions", "库存与领料申请"),
    ("st.alerts", "Alerts", "警报"),
    ("st.no_alerts", "No part is below its minimum or overdrawn.", "没有低于最低库存或透支的备件。"),
    ("st.overdrawn", "Overdrawn", "透支"),
    ("st.low", "Low", "低库存"),
    ("st.incomplete", "There are more movements than this page reads: the figures leave out the oldest ones.", "库存变动记录超出本页读取上限：数字未包含最早的记录。"),
    ("st.requisitions", "Requisitions", "领料申请"),
    ("st.no_requisitions", "No requisitions yet.", "暂无领料申请。"),
    ("st.when", "Requested", "申请时间"),
    ("st.engineer", "Engineer", "工程师"),
    ("st.van", "Van", "工具车"),
    ("st.part", "Part", "备件"),
    ("st.qty", "Quantity", "数量"),
    ("st.order", "Work order", "工单"),
    ("st.note", "Note", "备注"),
    ("st.status", "Status", "状态"),
    ("st.from", "From warehouse", "出库仓库"),
    ("st.approve", "Approve", "批准"),
    ("st.reason", "Reason", "原因"),
    ("st.reject", "Reject", "拒绝"),
    ("st.status_approved", "Approved", "已批准"),
    ("st.status_rejected", "Rejected", "已拒绝"),
    ("st.status_pending", "Waiting", "待审批"),
    ("st.by_location", "Stock by location", "各库位库存"),
    ("st.no_stock", "No stock recorded yet.", "暂无库存记录。"),
    ("st.location", "Location", "库位"),
    ("st.on_hand", "On hand", "现有"),
    ("st.min", "Minimum", "最低库存"),
    ("st.faulty", "Faulty (RMA)", "故障退回"),
    ("st.receipt", "Record a receipt", "登记入库"),
    ("st.record_receipt", "Record receipt", "登记入库"),
    ("st.sku", "SKU", "物料编号"),
    ("st.set_min", "Set a minimum", "设置最低库存"),
    ("st.save_min", "Save minimum", "保存最低库存"),
    ("st.approved_msg", "Approved: the parts are on their way to the van, and the engineer's next sync shows them.", "已批准：备件将调入工具车，工程师下次同步即可看到。"),
    ("st.rejected_msg", "Requisition rejected; the engineer sees it at the next sync.", "领料申请已拒绝；工程师下次同步即可看到。"),
    ("st.received_msg", "Receipt recorded.", "入库已登记。"),
    ("st.min_saved_msg", "Minimum saved.", "最低库存已保存。"),
    ("st.err_location", "Choose a stock location.", "请选择库位。"),
    ("st.err_sku", "No part with this SKU in the catalog.", "目录中没有此物料编号的备件。"),
    ("st.err_qty", "Enter a whole number of units, 1 or more.", "请输入不小于 1 的整数数量。"),
    ("st.err_min", "Enter a whole number, 0 or more.", "请输入不小于 0 的整数。"),
    ("st.err_from", "Choose the warehouse the parts leave from.", "请选择出库仓库。"),
];

impl From<Lang> for ReportLang {
    fn from(l: Lang) -> ReportLang {
        match l {
            Lang::En => ReportLang::En,
            Lang::ZhCn => ReportLang::ZhCn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_complete_and_keys_unique() {
        let mut keys = std::collections::HashSet::new();
        for (k, en, zh) in CATALOG {
            assert!(keys.insert(*k), "duplicate key {k}");
            assert!(!en.is_empty() && !zh.is_empty(), "{k} lacks a translation");
        }
    }

    /// Every value the console labels through the catalog has a label: a schema enum
    /// that gains a value must gain its strings too.
    #[test]
    fn every_enum_value_shown_has_a_label() {
        let has = |k: String| CATALOG.iter().any(|e| e.0 == k);
        for c in fieldsync_proto::schema::CHANNELS {
            assert!(has(format!("channel.{c}")), "channel.{c}");
        }
        for s in fieldsync_proto::schema::STATUSES {
            assert!(has(format!("status.{s}")), "status.{s}");
        }
        for w in fieldsync_proto::report::schema::WORK_TYPES {
            assert!(has(format!("work_type.{w}")), "work_type.{w}");
        }
        for t in fieldsync_proto::schema::TIERS {
            assert!(has(format!("tier.{t}")), "tier.{t}");
        }
        for c in fieldsync_proto::contact::CONTACT_CHANNELS {
            assert!(has(format!("cl.channel_{c}")), "cl.channel_{c}");
        }
        for d in fieldsync_proto::contact::CONTACT_DIRECTIONS {
            assert!(has(format!("cl.direction_{d}")), "cl.direction_{d}");
        }
    }

    #[test]
    fn accept_language_picks_best_supported() {
        assert_eq!(Lang::negotiate("zh-CN,zh;q=0.9,en;q=0.8"), Lang::ZhCn);
        assert_eq!(Lang::negotiate("de-DE,en;q=0.5,zh;q=0.4"), Lang::En);
        assert_eq!(Lang::negotiate("fr"), Lang::En);
        assert_eq!(Lang::negotiate("en;q=0.2, zh-TW;q=0.7"), Lang::ZhCn);
    }
}
