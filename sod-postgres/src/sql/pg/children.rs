//! Every child of every parse-tree node, for a complete walk.
//!
//! Generated from `pg_query` 18.1.0's `src/protobuf.rs`: one arm per `NodeRef` variant (the
//! match has no wildcard, so a `pg_query` upgrade that adds node types fails to compile here
//! until they are added), visiting every field that holds a node, in declaration order. Scalar
//! fields (names, flags, enums, locations) are not children. Regenerate (or extend by hand)
//! when upgrading `pg_query`; `tests/analyzer.rs` cross-checks the walk against the tree's
//! serde serialization for every corpus case.

use pg_query::NodeRef;
use pg_query::protobuf::Node;

/// Calls `f` on each direct child of `node` that holds a node.
pub(super) fn for_each_child<'a>(node: NodeRef<'a>, f: &mut dyn FnMut(NodeRef<'a>)) {
    match node {
        NodeRef::Alias(n) => {
            nodes(&n.colnames, f);
        }
        NodeRef::RangeVar(n) => {
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
        }
        NodeRef::TableFunc(n) => {
            nodes(&n.ns_uris, f);
            nodes(&n.ns_names, f);
            opt_node(n.docexpr.as_deref(), f);
            opt_node(n.rowexpr.as_deref(), f);
            nodes(&n.colnames, f);
            nodes(&n.coltypes, f);
            nodes(&n.coltypmods, f);
            nodes(&n.colcollations, f);
            nodes(&n.colexprs, f);
            nodes(&n.coldefexprs, f);
            nodes(&n.colvalexprs, f);
            nodes(&n.passingvalexprs, f);
            opt_node(n.plan.as_deref(), f);
        }
        NodeRef::IntoClause(n) => {
            if let Some(c) = &n.rel {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.col_names, f);
            nodes(&n.options, f);
            if let Some(c) = &n.view_query {
                f(NodeRef::Query(c));
            }
        }
        NodeRef::Var(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::Param(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::Aggref(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.aggargtypes, f);
            nodes(&n.aggdirectargs, f);
            nodes(&n.args, f);
            nodes(&n.aggorder, f);
            nodes(&n.aggdistinct, f);
            opt_node(n.aggfilter.as_deref(), f);
        }
        NodeRef::GroupingFunc(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
            nodes(&n.refs, f);
        }
        NodeRef::WindowFunc(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
            opt_node(n.aggfilter.as_deref(), f);
            nodes(&n.run_condition, f);
        }
        NodeRef::WindowFuncRunCondition(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::MergeSupportFunc(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::SubscriptingRef(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.refupperindexpr, f);
            nodes(&n.reflowerindexpr, f);
            opt_node(n.refexpr.as_deref(), f);
            opt_node(n.refassgnexpr.as_deref(), f);
        }
        NodeRef::FuncExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::NamedArgExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::OpExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::DistinctExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::NullIfExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::ScalarArrayOpExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::BoolExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::SubLink(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.testexpr.as_deref(), f);
            nodes(&n.oper_name, f);
            opt_node(n.subselect.as_deref(), f);
        }
        NodeRef::SubPlan(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.testexpr.as_deref(), f);
            nodes(&n.param_ids, f);
            nodes(&n.set_param, f);
            nodes(&n.par_param, f);
            nodes(&n.args, f);
        }
        NodeRef::AlternativeSubPlan(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.subplans, f);
        }
        NodeRef::FieldSelect(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::FieldStore(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
            nodes(&n.newvals, f);
            nodes(&n.fieldnums, f);
        }
        NodeRef::RelabelType(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::CoerceViaIo(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::ArrayCoerceExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
            opt_node(n.elemexpr.as_deref(), f);
        }
        NodeRef::ConvertRowtypeExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::CollateExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::CaseExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
            nodes(&n.args, f);
            opt_node(n.defresult.as_deref(), f);
        }
        NodeRef::CaseWhen(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.expr.as_deref(), f);
            opt_node(n.result.as_deref(), f);
        }
        NodeRef::CaseTestExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::ArrayExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.elements, f);
        }
        NodeRef::RowExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
            nodes(&n.colnames, f);
        }
        NodeRef::RowCompareExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.opnos, f);
            nodes(&n.opfamilies, f);
            nodes(&n.inputcollids, f);
            nodes(&n.largs, f);
            nodes(&n.rargs, f);
        }
        NodeRef::CoalesceExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::MinMaxExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
        }
        NodeRef::SqlvalueFunction(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::XmlExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.named_args, f);
            nodes(&n.arg_names, f);
            nodes(&n.args, f);
        }
        NodeRef::JsonFormat(_) => {}
        NodeRef::JsonReturning(n) => {
            if let Some(c) = &n.format {
                f(NodeRef::JsonFormat(c));
            }
        }
        NodeRef::JsonValueExpr(n) => {
            opt_node(n.raw_expr.as_deref(), f);
            opt_node(n.formatted_expr.as_deref(), f);
            if let Some(c) = &n.format {
                f(NodeRef::JsonFormat(c));
            }
        }
        NodeRef::JsonConstructorExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            nodes(&n.args, f);
            opt_node(n.func.as_deref(), f);
            opt_node(n.coercion.as_deref(), f);
            if let Some(c) = &n.returning {
                f(NodeRef::JsonReturning(c));
            }
        }
        NodeRef::JsonIsPredicate(n) => {
            opt_node(n.expr.as_deref(), f);
            if let Some(c) = &n.format {
                f(NodeRef::JsonFormat(c));
            }
        }
        NodeRef::JsonBehavior(n) => {
            opt_node(n.expr.as_deref(), f);
        }
        NodeRef::JsonExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.formatted_expr.as_deref(), f);
            if let Some(c) = &n.format {
                f(NodeRef::JsonFormat(c));
            }
            opt_node(n.path_spec.as_deref(), f);
            if let Some(c) = &n.returning {
                f(NodeRef::JsonReturning(c));
            }
            nodes(&n.passing_names, f);
            nodes(&n.passing_values, f);
            if let Some(c) = &n.on_empty {
                f(NodeRef::JsonBehavior(c));
            }
            if let Some(c) = &n.on_error {
                f(NodeRef::JsonBehavior(c));
            }
        }
        NodeRef::JsonTablePath(_) => {}
        NodeRef::JsonTablePathScan(n) => {
            opt_node(n.plan.as_deref(), f);
            if let Some(c) = &n.path {
                f(NodeRef::JsonTablePath(c));
            }
            opt_node(n.child.as_deref(), f);
        }
        NodeRef::JsonTableSiblingJoin(n) => {
            opt_node(n.plan.as_deref(), f);
            opt_node(n.lplan.as_deref(), f);
            opt_node(n.rplan.as_deref(), f);
        }
        NodeRef::NullTest(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::BooleanTest(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::MergeAction(n) => {
            opt_node(n.qual.as_deref(), f);
            nodes(&n.target_list, f);
            nodes(&n.update_colnos, f);
        }
        NodeRef::CoerceToDomain(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::CoerceToDomainValue(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::SetToDefault(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::CurrentOfExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::NextValueExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
        }
        NodeRef::InferenceElem(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.expr.as_deref(), f);
        }
        NodeRef::ReturningExpr(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.retexpr.as_deref(), f);
        }
        NodeRef::TargetEntry(n) => {
            opt_node(n.xpr.as_deref(), f);
            opt_node(n.expr.as_deref(), f);
        }
        NodeRef::RangeTblRef(_) => {}
        NodeRef::JoinExpr(n) => {
            opt_node(n.larg.as_deref(), f);
            opt_node(n.rarg.as_deref(), f);
            nodes(&n.using_clause, f);
            if let Some(c) = &n.join_using_alias {
                f(NodeRef::Alias(c));
            }
            opt_node(n.quals.as_deref(), f);
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
        }
        NodeRef::FromExpr(n) => {
            nodes(&n.fromlist, f);
            opt_node(n.quals.as_deref(), f);
        }
        NodeRef::OnConflictExpr(n) => {
            nodes(&n.arbiter_elems, f);
            opt_node(n.arbiter_where.as_deref(), f);
            nodes(&n.on_conflict_set, f);
            opt_node(n.on_conflict_where.as_deref(), f);
            nodes(&n.excl_rel_tlist, f);
        }
        NodeRef::Query(n) => {
            opt_node(n.utility_stmt.as_deref(), f);
            nodes(&n.cte_list, f);
            nodes(&n.rtable, f);
            nodes(&n.rteperminfos, f);
            if let Some(c) = &n.jointree {
                f(NodeRef::FromExpr(c));
            }
            nodes(&n.merge_action_list, f);
            opt_node(n.merge_join_condition.as_deref(), f);
            nodes(&n.target_list, f);
            if let Some(c) = &n.on_conflict {
                f(NodeRef::OnConflictExpr(c));
            }
            nodes(&n.returning_list, f);
            nodes(&n.group_clause, f);
            nodes(&n.grouping_sets, f);
            opt_node(n.having_qual.as_deref(), f);
            nodes(&n.window_clause, f);
            nodes(&n.distinct_clause, f);
            nodes(&n.sort_clause, f);
            opt_node(n.limit_offset.as_deref(), f);
            opt_node(n.limit_count.as_deref(), f);
            nodes(&n.row_marks, f);
            opt_node(n.set_operations.as_deref(), f);
            nodes(&n.constraint_deps, f);
            nodes(&n.with_check_options, f);
        }
        NodeRef::TypeName(n) => {
            nodes(&n.names, f);
            nodes(&n.typmods, f);
            nodes(&n.array_bounds, f);
        }
        NodeRef::ColumnRef(n) => {
            nodes(&n.fields, f);
        }
        NodeRef::ParamRef(_) => {}
        NodeRef::AExpr(n) => {
            nodes(&n.name, f);
            opt_node(n.lexpr.as_deref(), f);
            opt_node(n.rexpr.as_deref(), f);
        }
        NodeRef::TypeCast(n) => {
            opt_node(n.arg.as_deref(), f);
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
        }
        NodeRef::CollateClause(n) => {
            opt_node(n.arg.as_deref(), f);
            nodes(&n.collname, f);
        }
        NodeRef::RoleSpec(_) => {}
        NodeRef::FuncCall(n) => {
            nodes(&n.funcname, f);
            nodes(&n.args, f);
            nodes(&n.agg_order, f);
            opt_node(n.agg_filter.as_deref(), f);
            if let Some(c) = &n.over {
                f(NodeRef::WindowDef(c));
            }
        }
        NodeRef::AStar(_) => {}
        NodeRef::AIndices(n) => {
            opt_node(n.lidx.as_deref(), f);
            opt_node(n.uidx.as_deref(), f);
        }
        NodeRef::AIndirection(n) => {
            opt_node(n.arg.as_deref(), f);
            nodes(&n.indirection, f);
        }
        NodeRef::AArrayExpr(n) => {
            nodes(&n.elements, f);
        }
        NodeRef::ResTarget(n) => {
            nodes(&n.indirection, f);
            opt_node(n.val.as_deref(), f);
        }
        NodeRef::MultiAssignRef(n) => {
            opt_node(n.source.as_deref(), f);
        }
        NodeRef::SortBy(n) => {
            opt_node(n.node.as_deref(), f);
            nodes(&n.use_op, f);
        }
        NodeRef::WindowDef(n) => {
            nodes(&n.partition_clause, f);
            nodes(&n.order_clause, f);
            opt_node(n.start_offset.as_deref(), f);
            opt_node(n.end_offset.as_deref(), f);
        }
        NodeRef::RangeSubselect(n) => {
            opt_node(n.subquery.as_deref(), f);
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
        }
        NodeRef::RangeFunction(n) => {
            nodes(&n.functions, f);
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
            nodes(&n.coldeflist, f);
        }
        NodeRef::RangeTableFunc(n) => {
            opt_node(n.docexpr.as_deref(), f);
            opt_node(n.rowexpr.as_deref(), f);
            nodes(&n.namespaces, f);
            nodes(&n.columns, f);
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
        }
        NodeRef::RangeTableFuncCol(n) => {
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
            opt_node(n.colexpr.as_deref(), f);
            opt_node(n.coldefexpr.as_deref(), f);
        }
        NodeRef::RangeTableSample(n) => {
            opt_node(n.relation.as_deref(), f);
            nodes(&n.method, f);
            nodes(&n.args, f);
            opt_node(n.repeatable.as_deref(), f);
        }
        NodeRef::ColumnDef(n) => {
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
            opt_node(n.raw_default.as_deref(), f);
            opt_node(n.cooked_default.as_deref(), f);
            if let Some(c) = &n.identity_sequence {
                f(NodeRef::RangeVar(c));
            }
            if let Some(c) = &n.coll_clause {
                f(NodeRef::CollateClause(c));
            }
            nodes(&n.constraints, f);
            nodes(&n.fdwoptions, f);
        }
        NodeRef::TableLikeClause(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
        }
        NodeRef::IndexElem(n) => {
            opt_node(n.expr.as_deref(), f);
            nodes(&n.collation, f);
            nodes(&n.opclass, f);
            nodes(&n.opclassopts, f);
        }
        NodeRef::DefElem(n) => {
            opt_node(n.arg.as_deref(), f);
        }
        NodeRef::LockingClause(n) => {
            nodes(&n.locked_rels, f);
        }
        NodeRef::XmlSerialize(n) => {
            opt_node(n.expr.as_deref(), f);
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
        }
        NodeRef::PartitionElem(n) => {
            opt_node(n.expr.as_deref(), f);
            nodes(&n.collation, f);
            nodes(&n.opclass, f);
        }
        NodeRef::PartitionSpec(n) => {
            nodes(&n.part_params, f);
        }
        NodeRef::PartitionBoundSpec(n) => {
            nodes(&n.listdatums, f);
            nodes(&n.lowerdatums, f);
            nodes(&n.upperdatums, f);
        }
        NodeRef::PartitionRangeDatum(n) => {
            opt_node(n.value.as_deref(), f);
        }
        NodeRef::PartitionCmd(n) => {
            if let Some(c) = &n.name {
                f(NodeRef::RangeVar(c));
            }
            if let Some(c) = &n.bound {
                f(NodeRef::PartitionBoundSpec(c));
            }
        }
        NodeRef::RangeTblEntry(n) => {
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
            if let Some(c) = &n.eref {
                f(NodeRef::Alias(c));
            }
            if let Some(c) = &n.tablesample {
                f(NodeRef::TableSampleClause(c));
            }
            if let Some(c) = &n.subquery {
                f(NodeRef::Query(c));
            }
            nodes(&n.joinaliasvars, f);
            nodes(&n.joinleftcols, f);
            nodes(&n.joinrightcols, f);
            if let Some(c) = &n.join_using_alias {
                f(NodeRef::Alias(c));
            }
            nodes(&n.functions, f);
            if let Some(c) = &n.tablefunc {
                f(NodeRef::TableFunc(c));
            }
            nodes(&n.values_lists, f);
            nodes(&n.coltypes, f);
            nodes(&n.coltypmods, f);
            nodes(&n.colcollations, f);
            nodes(&n.groupexprs, f);
            nodes(&n.security_quals, f);
        }
        NodeRef::RtepermissionInfo(_) => {}
        NodeRef::RangeTblFunction(n) => {
            opt_node(n.funcexpr.as_deref(), f);
            nodes(&n.funccolnames, f);
            nodes(&n.funccoltypes, f);
            nodes(&n.funccoltypmods, f);
            nodes(&n.funccolcollations, f);
        }
        NodeRef::TableSampleClause(n) => {
            nodes(&n.args, f);
            opt_node(n.repeatable.as_deref(), f);
        }
        NodeRef::WithCheckOption(n) => {
            opt_node(n.qual.as_deref(), f);
        }
        NodeRef::SortGroupClause(_) => {}
        NodeRef::GroupingSet(n) => {
            nodes(&n.content, f);
        }
        NodeRef::WindowClause(n) => {
            nodes(&n.partition_clause, f);
            nodes(&n.order_clause, f);
            opt_node(n.start_offset.as_deref(), f);
            opt_node(n.end_offset.as_deref(), f);
        }
        NodeRef::RowMarkClause(_) => {}
        NodeRef::WithClause(n) => {
            nodes(&n.ctes, f);
        }
        NodeRef::InferClause(n) => {
            nodes(&n.index_elems, f);
            opt_node(n.where_clause.as_deref(), f);
        }
        NodeRef::OnConflictClause(n) => {
            if let Some(c) = &n.infer {
                f(NodeRef::InferClause(c));
            }
            nodes(&n.target_list, f);
            opt_node(n.where_clause.as_deref(), f);
        }
        NodeRef::CtesearchClause(n) => {
            nodes(&n.search_col_list, f);
        }
        NodeRef::CtecycleClause(n) => {
            nodes(&n.cycle_col_list, f);
            opt_node(n.cycle_mark_value.as_deref(), f);
            opt_node(n.cycle_mark_default.as_deref(), f);
        }
        NodeRef::CommonTableExpr(n) => {
            nodes(&n.aliascolnames, f);
            opt_node(n.ctequery.as_deref(), f);
            if let Some(c) = &n.search_clause {
                f(NodeRef::CtesearchClause(c));
            }
            if let Some(c) = &n.cycle_clause {
                f(NodeRef::CtecycleClause(c));
            }
            nodes(&n.ctecolnames, f);
            nodes(&n.ctecoltypes, f);
            nodes(&n.ctecoltypmods, f);
            nodes(&n.ctecolcollations, f);
        }
        NodeRef::MergeWhenClause(n) => {
            opt_node(n.condition.as_deref(), f);
            nodes(&n.target_list, f);
            nodes(&n.values, f);
        }
        NodeRef::ReturningOption(_) => {}
        NodeRef::ReturningClause(n) => {
            nodes(&n.options, f);
            nodes(&n.exprs, f);
        }
        NodeRef::TriggerTransition(_) => {}
        NodeRef::JsonOutput(n) => {
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
            if let Some(c) = &n.returning {
                f(NodeRef::JsonReturning(c));
            }
        }
        NodeRef::JsonArgument(n) => {
            if let Some(c) = &n.val {
                f(NodeRef::JsonValueExpr(c));
            }
        }
        NodeRef::JsonFuncExpr(n) => {
            if let Some(c) = &n.context_item {
                f(NodeRef::JsonValueExpr(c));
            }
            opt_node(n.pathspec.as_deref(), f);
            nodes(&n.passing, f);
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
            if let Some(c) = &n.on_empty {
                f(NodeRef::JsonBehavior(c));
            }
            if let Some(c) = &n.on_error {
                f(NodeRef::JsonBehavior(c));
            }
        }
        NodeRef::JsonTablePathSpec(n) => {
            opt_node(n.string.as_deref(), f);
        }
        NodeRef::JsonTable(n) => {
            if let Some(c) = &n.context_item {
                f(NodeRef::JsonValueExpr(c));
            }
            if let Some(c) = &n.pathspec {
                f(NodeRef::JsonTablePathSpec(c));
            }
            nodes(&n.passing, f);
            nodes(&n.columns, f);
            if let Some(c) = &n.on_error {
                f(NodeRef::JsonBehavior(c));
            }
            if let Some(c) = &n.alias {
                f(NodeRef::Alias(c));
            }
        }
        NodeRef::JsonTableColumn(n) => {
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
            if let Some(c) = &n.pathspec {
                f(NodeRef::JsonTablePathSpec(c));
            }
            if let Some(c) = &n.format {
                f(NodeRef::JsonFormat(c));
            }
            nodes(&n.columns, f);
            if let Some(c) = &n.on_empty {
                f(NodeRef::JsonBehavior(c));
            }
            if let Some(c) = &n.on_error {
                f(NodeRef::JsonBehavior(c));
            }
        }
        NodeRef::JsonKeyValue(n) => {
            opt_node(n.key.as_deref(), f);
            if let Some(c) = &n.value {
                f(NodeRef::JsonValueExpr(c));
            }
        }
        NodeRef::JsonParseExpr(n) => {
            if let Some(c) = &n.expr {
                f(NodeRef::JsonValueExpr(c));
            }
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
        }
        NodeRef::JsonScalarExpr(n) => {
            opt_node(n.expr.as_deref(), f);
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
        }
        NodeRef::JsonSerializeExpr(n) => {
            if let Some(c) = &n.expr {
                f(NodeRef::JsonValueExpr(c));
            }
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
        }
        NodeRef::JsonObjectConstructor(n) => {
            nodes(&n.exprs, f);
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
        }
        NodeRef::JsonArrayConstructor(n) => {
            nodes(&n.exprs, f);
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
        }
        NodeRef::JsonArrayQueryConstructor(n) => {
            opt_node(n.query.as_deref(), f);
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
            if let Some(c) = &n.format {
                f(NodeRef::JsonFormat(c));
            }
        }
        NodeRef::JsonAggConstructor(n) => {
            if let Some(c) = &n.output {
                f(NodeRef::JsonOutput(c));
            }
            opt_node(n.agg_filter.as_deref(), f);
            nodes(&n.agg_order, f);
            if let Some(c) = &n.over {
                f(NodeRef::WindowDef(c));
            }
        }
        NodeRef::JsonObjectAgg(n) => {
            if let Some(c) = &n.constructor {
                f(NodeRef::JsonAggConstructor(c));
            }
            if let Some(c) = &n.arg {
                f(NodeRef::JsonKeyValue(c));
            }
        }
        NodeRef::JsonArrayAgg(n) => {
            if let Some(c) = &n.constructor {
                f(NodeRef::JsonAggConstructor(c));
            }
            if let Some(c) = &n.arg {
                f(NodeRef::JsonValueExpr(c));
            }
        }
        NodeRef::RawStmt(n) => {
            opt_node(n.stmt.as_deref(), f);
        }
        NodeRef::InsertStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.cols, f);
            opt_node(n.select_stmt.as_deref(), f);
            if let Some(c) = &n.on_conflict_clause {
                f(NodeRef::OnConflictClause(c));
            }
            if let Some(c) = &n.returning_clause {
                f(NodeRef::ReturningClause(c));
            }
            if let Some(c) = &n.with_clause {
                f(NodeRef::WithClause(c));
            }
        }
        NodeRef::DeleteStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.using_clause, f);
            opt_node(n.where_clause.as_deref(), f);
            if let Some(c) = &n.returning_clause {
                f(NodeRef::ReturningClause(c));
            }
            if let Some(c) = &n.with_clause {
                f(NodeRef::WithClause(c));
            }
        }
        NodeRef::UpdateStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.target_list, f);
            opt_node(n.where_clause.as_deref(), f);
            nodes(&n.from_clause, f);
            if let Some(c) = &n.returning_clause {
                f(NodeRef::ReturningClause(c));
            }
            if let Some(c) = &n.with_clause {
                f(NodeRef::WithClause(c));
            }
        }
        NodeRef::MergeStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.source_relation.as_deref(), f);
            opt_node(n.join_condition.as_deref(), f);
            nodes(&n.merge_when_clauses, f);
            if let Some(c) = &n.returning_clause {
                f(NodeRef::ReturningClause(c));
            }
            if let Some(c) = &n.with_clause {
                f(NodeRef::WithClause(c));
            }
        }
        NodeRef::SelectStmt(n) => {
            nodes(&n.distinct_clause, f);
            if let Some(c) = &n.into_clause {
                f(NodeRef::IntoClause(c));
            }
            nodes(&n.target_list, f);
            nodes(&n.from_clause, f);
            opt_node(n.where_clause.as_deref(), f);
            nodes(&n.group_clause, f);
            opt_node(n.having_clause.as_deref(), f);
            nodes(&n.window_clause, f);
            nodes(&n.values_lists, f);
            nodes(&n.sort_clause, f);
            opt_node(n.limit_offset.as_deref(), f);
            opt_node(n.limit_count.as_deref(), f);
            nodes(&n.locking_clause, f);
            if let Some(c) = &n.with_clause {
                f(NodeRef::WithClause(c));
            }
            if let Some(c) = &n.larg {
                f(NodeRef::SelectStmt(c));
            }
            if let Some(c) = &n.rarg {
                f(NodeRef::SelectStmt(c));
            }
        }
        NodeRef::SetOperationStmt(n) => {
            opt_node(n.larg.as_deref(), f);
            opt_node(n.rarg.as_deref(), f);
            nodes(&n.col_types, f);
            nodes(&n.col_typmods, f);
            nodes(&n.col_collations, f);
            nodes(&n.group_clauses, f);
        }
        NodeRef::ReturnStmt(n) => {
            opt_node(n.returnval.as_deref(), f);
        }
        NodeRef::PlassignStmt(n) => {
            nodes(&n.indirection, f);
            if let Some(c) = &n.val {
                f(NodeRef::SelectStmt(c));
            }
        }
        NodeRef::CreateSchemaStmt(n) => {
            if let Some(c) = &n.authrole {
                f(NodeRef::RoleSpec(c));
            }
            nodes(&n.schema_elts, f);
        }
        NodeRef::AlterTableStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.cmds, f);
        }
        NodeRef::AlterTableCmd(n) => {
            if let Some(c) = &n.newowner {
                f(NodeRef::RoleSpec(c));
            }
            opt_node(n.def.as_deref(), f);
        }
        NodeRef::AtalterConstraint(_) => {}
        NodeRef::ReplicaIdentityStmt(_) => {}
        NodeRef::AlterCollationStmt(n) => {
            nodes(&n.collname, f);
        }
        NodeRef::AlterDomainStmt(n) => {
            nodes(&n.type_name, f);
            opt_node(n.def.as_deref(), f);
        }
        NodeRef::GrantStmt(n) => {
            nodes(&n.objects, f);
            nodes(&n.privileges, f);
            nodes(&n.grantees, f);
            if let Some(c) = &n.grantor {
                f(NodeRef::RoleSpec(c));
            }
        }
        NodeRef::ObjectWithArgs(n) => {
            nodes(&n.objname, f);
            nodes(&n.objargs, f);
            nodes(&n.objfuncargs, f);
        }
        NodeRef::AccessPriv(n) => {
            nodes(&n.cols, f);
        }
        NodeRef::GrantRoleStmt(n) => {
            nodes(&n.granted_roles, f);
            nodes(&n.grantee_roles, f);
            nodes(&n.opt, f);
            if let Some(c) = &n.grantor {
                f(NodeRef::RoleSpec(c));
            }
        }
        NodeRef::AlterDefaultPrivilegesStmt(n) => {
            nodes(&n.options, f);
            if let Some(c) = &n.action {
                f(NodeRef::GrantStmt(c));
            }
        }
        NodeRef::CopyStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.query.as_deref(), f);
            nodes(&n.attlist, f);
            nodes(&n.options, f);
            opt_node(n.where_clause.as_deref(), f);
        }
        NodeRef::VariableSetStmt(n) => {
            nodes(&n.args, f);
        }
        NodeRef::VariableShowStmt(_) => {}
        NodeRef::CreateStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.table_elts, f);
            nodes(&n.inh_relations, f);
            if let Some(c) = &n.partbound {
                f(NodeRef::PartitionBoundSpec(c));
            }
            if let Some(c) = &n.partspec {
                f(NodeRef::PartitionSpec(c));
            }
            if let Some(c) = &n.of_typename {
                f(NodeRef::TypeName(c));
            }
            nodes(&n.constraints, f);
            nodes(&n.nnconstraints, f);
            nodes(&n.options, f);
        }
        NodeRef::Constraint(n) => {
            opt_node(n.raw_expr.as_deref(), f);
            nodes(&n.keys, f);
            nodes(&n.including, f);
            nodes(&n.exclusions, f);
            nodes(&n.options, f);
            opt_node(n.where_clause.as_deref(), f);
            if let Some(c) = &n.pktable {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.fk_attrs, f);
            nodes(&n.pk_attrs, f);
            nodes(&n.fk_del_set_cols, f);
            nodes(&n.old_conpfeqop, f);
        }
        NodeRef::CreateTableSpaceStmt(n) => {
            if let Some(c) = &n.owner {
                f(NodeRef::RoleSpec(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::DropTableSpaceStmt(_) => {}
        NodeRef::AlterTableSpaceOptionsStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterTableMoveAllStmt(n) => {
            nodes(&n.roles, f);
        }
        NodeRef::CreateExtensionStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterExtensionStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterExtensionContentsStmt(n) => {
            opt_node(n.object.as_deref(), f);
        }
        NodeRef::CreateFdwStmt(n) => {
            nodes(&n.func_options, f);
            nodes(&n.options, f);
        }
        NodeRef::AlterFdwStmt(n) => {
            nodes(&n.func_options, f);
            nodes(&n.options, f);
        }
        NodeRef::CreateForeignServerStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterForeignServerStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::CreateForeignTableStmt(n) => {
            if let Some(c) = &n.base_stmt {
                f(NodeRef::CreateStmt(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::CreateUserMappingStmt(n) => {
            if let Some(c) = &n.user {
                f(NodeRef::RoleSpec(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::AlterUserMappingStmt(n) => {
            if let Some(c) = &n.user {
                f(NodeRef::RoleSpec(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::DropUserMappingStmt(n) => {
            if let Some(c) = &n.user {
                f(NodeRef::RoleSpec(c));
            }
        }
        NodeRef::ImportForeignSchemaStmt(n) => {
            nodes(&n.table_list, f);
            nodes(&n.options, f);
        }
        NodeRef::CreatePolicyStmt(n) => {
            if let Some(c) = &n.table {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.roles, f);
            opt_node(n.qual.as_deref(), f);
            opt_node(n.with_check.as_deref(), f);
        }
        NodeRef::AlterPolicyStmt(n) => {
            if let Some(c) = &n.table {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.roles, f);
            opt_node(n.qual.as_deref(), f);
            opt_node(n.with_check.as_deref(), f);
        }
        NodeRef::CreateAmStmt(n) => {
            nodes(&n.handler_name, f);
        }
        NodeRef::CreateTrigStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.funcname, f);
            nodes(&n.args, f);
            nodes(&n.columns, f);
            opt_node(n.when_clause.as_deref(), f);
            nodes(&n.transition_rels, f);
            if let Some(c) = &n.constrrel {
                f(NodeRef::RangeVar(c));
            }
        }
        NodeRef::CreateEventTrigStmt(n) => {
            nodes(&n.whenclause, f);
            nodes(&n.funcname, f);
        }
        NodeRef::AlterEventTrigStmt(_) => {}
        NodeRef::CreatePlangStmt(n) => {
            nodes(&n.plhandler, f);
            nodes(&n.plinline, f);
            nodes(&n.plvalidator, f);
        }
        NodeRef::CreateRoleStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterRoleStmt(n) => {
            if let Some(c) = &n.role {
                f(NodeRef::RoleSpec(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::AlterRoleSetStmt(n) => {
            if let Some(c) = &n.role {
                f(NodeRef::RoleSpec(c));
            }
            if let Some(c) = &n.setstmt {
                f(NodeRef::VariableSetStmt(c));
            }
        }
        NodeRef::DropRoleStmt(n) => {
            nodes(&n.roles, f);
        }
        NodeRef::CreateSeqStmt(n) => {
            if let Some(c) = &n.sequence {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::AlterSeqStmt(n) => {
            if let Some(c) = &n.sequence {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::DefineStmt(n) => {
            nodes(&n.defnames, f);
            nodes(&n.args, f);
            nodes(&n.definition, f);
        }
        NodeRef::CreateDomainStmt(n) => {
            nodes(&n.domainname, f);
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
            if let Some(c) = &n.coll_clause {
                f(NodeRef::CollateClause(c));
            }
            nodes(&n.constraints, f);
        }
        NodeRef::CreateOpClassStmt(n) => {
            nodes(&n.opclassname, f);
            nodes(&n.opfamilyname, f);
            if let Some(c) = &n.datatype {
                f(NodeRef::TypeName(c));
            }
            nodes(&n.items, f);
        }
        NodeRef::CreateOpClassItem(n) => {
            if let Some(c) = &n.name {
                f(NodeRef::ObjectWithArgs(c));
            }
            nodes(&n.order_family, f);
            nodes(&n.class_args, f);
            if let Some(c) = &n.storedtype {
                f(NodeRef::TypeName(c));
            }
        }
        NodeRef::CreateOpFamilyStmt(n) => {
            nodes(&n.opfamilyname, f);
        }
        NodeRef::AlterOpFamilyStmt(n) => {
            nodes(&n.opfamilyname, f);
            nodes(&n.items, f);
        }
        NodeRef::DropStmt(n) => {
            nodes(&n.objects, f);
        }
        NodeRef::TruncateStmt(n) => {
            nodes(&n.relations, f);
        }
        NodeRef::CommentStmt(n) => {
            opt_node(n.object.as_deref(), f);
        }
        NodeRef::SecLabelStmt(n) => {
            opt_node(n.object.as_deref(), f);
        }
        NodeRef::DeclareCursorStmt(n) => {
            opt_node(n.query.as_deref(), f);
        }
        NodeRef::ClosePortalStmt(_) => {}
        NodeRef::FetchStmt(_) => {}
        NodeRef::IndexStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.index_params, f);
            nodes(&n.index_including_params, f);
            nodes(&n.options, f);
            opt_node(n.where_clause.as_deref(), f);
            nodes(&n.exclude_op_names, f);
        }
        NodeRef::CreateStatsStmt(n) => {
            nodes(&n.defnames, f);
            nodes(&n.stat_types, f);
            nodes(&n.exprs, f);
            nodes(&n.relations, f);
        }
        NodeRef::StatsElem(n) => {
            opt_node(n.expr.as_deref(), f);
        }
        NodeRef::AlterStatsStmt(n) => {
            nodes(&n.defnames, f);
            opt_node(n.stxstattarget.as_deref(), f);
        }
        NodeRef::CreateFunctionStmt(n) => {
            nodes(&n.funcname, f);
            nodes(&n.parameters, f);
            if let Some(c) = &n.return_type {
                f(NodeRef::TypeName(c));
            }
            nodes(&n.options, f);
            opt_node(n.sql_body.as_deref(), f);
        }
        NodeRef::FunctionParameter(n) => {
            if let Some(c) = &n.arg_type {
                f(NodeRef::TypeName(c));
            }
            opt_node(n.defexpr.as_deref(), f);
        }
        NodeRef::AlterFunctionStmt(n) => {
            if let Some(c) = &n.func {
                f(NodeRef::ObjectWithArgs(c));
            }
            nodes(&n.actions, f);
        }
        NodeRef::DoStmt(n) => {
            nodes(&n.args, f);
        }
        NodeRef::InlineCodeBlock(_) => {}
        NodeRef::CallStmt(n) => {
            if let Some(c) = &n.funccall {
                f(NodeRef::FuncCall(c));
            }
            if let Some(c) = &n.funcexpr {
                f(NodeRef::FuncExpr(c));
            }
            nodes(&n.outargs, f);
        }
        NodeRef::CallContext(_) => {}
        NodeRef::RenameStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.object.as_deref(), f);
        }
        NodeRef::AlterObjectDependsStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.object.as_deref(), f);
            if let Some(c) = &n.extname {
                f(NodeRef::String(c));
            }
        }
        NodeRef::AlterObjectSchemaStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.object.as_deref(), f);
        }
        NodeRef::AlterOwnerStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.object.as_deref(), f);
            if let Some(c) = &n.newowner {
                f(NodeRef::RoleSpec(c));
            }
        }
        NodeRef::AlterOperatorStmt(n) => {
            if let Some(c) = &n.opername {
                f(NodeRef::ObjectWithArgs(c));
            }
            nodes(&n.options, f);
        }
        NodeRef::AlterTypeStmt(n) => {
            nodes(&n.type_name, f);
            nodes(&n.options, f);
        }
        NodeRef::RuleStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.where_clause.as_deref(), f);
            nodes(&n.actions, f);
        }
        NodeRef::NotifyStmt(_) => {}
        NodeRef::ListenStmt(_) => {}
        NodeRef::UnlistenStmt(_) => {}
        NodeRef::TransactionStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::CompositeTypeStmt(n) => {
            if let Some(c) = &n.typevar {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.coldeflist, f);
        }
        NodeRef::CreateEnumStmt(n) => {
            nodes(&n.type_name, f);
            nodes(&n.vals, f);
        }
        NodeRef::CreateRangeStmt(n) => {
            nodes(&n.type_name, f);
            nodes(&n.params, f);
        }
        NodeRef::AlterEnumStmt(n) => {
            nodes(&n.type_name, f);
        }
        NodeRef::ViewStmt(n) => {
            if let Some(c) = &n.view {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.aliases, f);
            opt_node(n.query.as_deref(), f);
            nodes(&n.options, f);
        }
        NodeRef::LoadStmt(_) => {}
        NodeRef::CreatedbStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterDatabaseStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterDatabaseRefreshCollStmt(_) => {}
        NodeRef::AlterDatabaseSetStmt(n) => {
            if let Some(c) = &n.setstmt {
                f(NodeRef::VariableSetStmt(c));
            }
        }
        NodeRef::DropdbStmt(n) => {
            nodes(&n.options, f);
        }
        NodeRef::AlterSystemStmt(n) => {
            if let Some(c) = &n.setstmt {
                f(NodeRef::VariableSetStmt(c));
            }
        }
        NodeRef::ClusterStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.params, f);
        }
        NodeRef::VacuumStmt(n) => {
            nodes(&n.options, f);
            nodes(&n.rels, f);
        }
        NodeRef::VacuumRelation(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.va_cols, f);
        }
        NodeRef::ExplainStmt(n) => {
            opt_node(n.query.as_deref(), f);
            nodes(&n.options, f);
        }
        NodeRef::CreateTableAsStmt(n) => {
            opt_node(n.query.as_deref(), f);
            if let Some(c) = &n.into {
                f(NodeRef::IntoClause(c));
            }
        }
        NodeRef::RefreshMatViewStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
        }
        NodeRef::CheckPointStmt(_) => {}
        NodeRef::DiscardStmt(_) => {}
        NodeRef::LockStmt(n) => {
            nodes(&n.relations, f);
        }
        NodeRef::ConstraintsSetStmt(n) => {
            nodes(&n.constraints, f);
        }
        NodeRef::ReindexStmt(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            nodes(&n.params, f);
        }
        NodeRef::CreateConversionStmt(n) => {
            nodes(&n.conversion_name, f);
            nodes(&n.func_name, f);
        }
        NodeRef::CreateCastStmt(n) => {
            if let Some(c) = &n.sourcetype {
                f(NodeRef::TypeName(c));
            }
            if let Some(c) = &n.targettype {
                f(NodeRef::TypeName(c));
            }
            if let Some(c) = &n.func {
                f(NodeRef::ObjectWithArgs(c));
            }
        }
        NodeRef::CreateTransformStmt(n) => {
            if let Some(c) = &n.type_name {
                f(NodeRef::TypeName(c));
            }
            if let Some(c) = &n.fromsql {
                f(NodeRef::ObjectWithArgs(c));
            }
            if let Some(c) = &n.tosql {
                f(NodeRef::ObjectWithArgs(c));
            }
        }
        NodeRef::PrepareStmt(n) => {
            nodes(&n.argtypes, f);
            opt_node(n.query.as_deref(), f);
        }
        NodeRef::ExecuteStmt(n) => {
            nodes(&n.params, f);
        }
        NodeRef::DeallocateStmt(_) => {}
        NodeRef::DropOwnedStmt(n) => {
            nodes(&n.roles, f);
        }
        NodeRef::ReassignOwnedStmt(n) => {
            nodes(&n.roles, f);
            if let Some(c) = &n.newrole {
                f(NodeRef::RoleSpec(c));
            }
        }
        NodeRef::AlterTsdictionaryStmt(n) => {
            nodes(&n.dictname, f);
            nodes(&n.options, f);
        }
        NodeRef::AlterTsconfigurationStmt(n) => {
            nodes(&n.cfgname, f);
            nodes(&n.tokentype, f);
            nodes(&n.dicts, f);
        }
        NodeRef::PublicationTable(n) => {
            if let Some(c) = &n.relation {
                f(NodeRef::RangeVar(c));
            }
            opt_node(n.where_clause.as_deref(), f);
            nodes(&n.columns, f);
        }
        NodeRef::PublicationObjSpec(n) => {
            if let Some(c) = &n.pubtable {
                f(NodeRef::PublicationTable(c));
            }
        }
        NodeRef::CreatePublicationStmt(n) => {
            nodes(&n.options, f);
            nodes(&n.pubobjects, f);
        }
        NodeRef::AlterPublicationStmt(n) => {
            nodes(&n.options, f);
            nodes(&n.pubobjects, f);
        }
        NodeRef::CreateSubscriptionStmt(n) => {
            nodes(&n.publication, f);
            nodes(&n.options, f);
        }
        NodeRef::AlterSubscriptionStmt(n) => {
            nodes(&n.publication, f);
            nodes(&n.options, f);
        }
        NodeRef::DropSubscriptionStmt(_) => {}
        NodeRef::Integer(_) => {}
        NodeRef::Float(_) => {}
        NodeRef::Boolean(_) => {}
        NodeRef::String(_) => {}
        NodeRef::BitString(_) => {}
        NodeRef::List(n) => {
            nodes(&n.items, f);
        }
        NodeRef::IntList(n) => {
            nodes(&n.items, f);
        }
        NodeRef::OidList(n) => {
            nodes(&n.items, f);
        }
        NodeRef::AConst(_) => {}
    }
}

fn opt_node<'a>(node: Option<&'a Node>, f: &mut dyn FnMut(NodeRef<'a>)) {
    if let Some(n) = node.and_then(|n| n.node.as_ref()) {
        f(n.to_ref());
    }
}

fn nodes<'a>(list: &'a [Node], f: &mut dyn FnMut(NodeRef<'a>)) {
    for n in list {
        if let Some(n) = &n.node {
            f(n.to_ref());
        }
    }
}
