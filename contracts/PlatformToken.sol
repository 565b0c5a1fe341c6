// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title PlatformToken: the private-equity platform's token, projects and purchases
/// @notice An ERC-20 token with whole-unit amounts (decimals = 0), administered by its
///         owner (mint, burn, set a balance), plus a project market: anyone publishes a
///         project and is rewarded with freshly minted tokens; anyone else buys it by
///         paying its price in tokens to the publisher. Every action emits an event so
///         the application can audit the chain.
/// @dev Compiled for EVM `paris` (the private chain is London-era Clique: no PUSH0).
///      Project ids and purchase ids start at 1, so 0 always means "none".
contract PlatformToken {
    // ---------------------------------------------------------------- types --

    /// @notice A published project.
    struct Project {
        address publisher;
        uint64 time;
        bytes32 projectHash;
        uint256 price;
        string name;
    }

    /// @notice One purchase of a project.
    struct Purchase {
        uint256 projectId;
        address buyer;
        uint64 time;
        uint256 price;
    }

    // ---------------------------------------------------------------- state --

    /// @notice ERC-20 name.
    string public constant name = "Platform Token";
    /// @notice ERC-20 symbol.
    string public constant symbol = "PLT";
    /// @notice Tokens are whole units: the API's amounts are integers.
    uint8 public constant decimals = 0;

    /// @notice The administrator: the only account that may mint, burn, set balances
    ///         and change the contract's parameters.
    address public owner;
    /// @notice Sum of all balances.
    uint256 public totalSupply;
    /// @notice Tokens minted to the publisher of each new project.
    uint256 public publishReward;
    /// @notice Price of a project published without an explicit price.
    uint256 public defaultPrice;
    /// @notice Number of published projects; their ids are 1..projectCount.
    uint256 public projectCount;

    /// @notice Token balance of an account.
    mapping(address => uint256) public balanceOf;
    /// @notice ERC-20 allowance: how much `spender` may move out of `holder`'s balance.
    mapping(address => mapping(address => uint256)) public allowance;
    /// @notice The id of the project with a given hash, 0 when there is none.
    mapping(bytes32 => uint256) public projectIdOf;

    mapping(uint256 => Project) private _projects;
    Purchase[] private _purchases; // purchase id n is _purchases[n - 1]
    mapping(uint256 => uint256[]) private _purchaseIdsByProject;

    // --------------------------------------------------------------- events --

    /// @notice ERC-20 transfer; also emitted from/to the zero address for every mint,
    ///         burn, balance set and publish reward, so a plain ERC-20 indexer sees
    ///         every change of supply.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice ERC-20 approval.
    event Approval(address indexed holder, address indexed spender, uint256 value);
    /// @notice The owner minted `value` tokens to `to` (the API's "add").
    event Mint(address indexed to, uint256 value);
    /// @notice The owner burned `value` tokens from `from` (the API's "delete").
    event Burn(address indexed from, uint256 value);
    /// @notice The owner set `account`'s balance (the API's "set").
    event BalanceSet(address indexed account, uint256 previousBalance, uint256 newBalance);
    /// @notice A project was published; its publisher received `reward` new tokens.
    event ProjectPublished(
        uint256 indexed id,
        address indexed publisher,
        string name,
        bytes32 indexed projectHash,
        uint64 time,
        uint256 price,
        uint256 reward
    );
    /// @notice `buyer` bought project `projectId` for `price` tokens paid to `publisher`.
    event ProjectPurchased(
        uint256 indexed purchaseId,
        uint256 indexed projectId,
        address indexed buyer,
        address publisher,
        uint256 price,
        uint64 time
    );
    /// @notice Ownership moved (from the zero address at deployment).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// @notice The publish reward changed (from 0 at deployment).
    event PublishRewardChanged(uint256 previousReward, uint256 newReward);
    /// @notice The default project price changed (from 0 at deployment).
    event DefaultPriceChanged(uint256 previousPrice, uint256 newPrice);

    // --------------------------------------------------------------- errors --

    /// @notice `caller` is not the owner.
    error NotOwner(address caller);
    /// @notice The zero address cannot hold tokens or own the contract.
    error ZeroAddress();
    /// @notice `account` holds `balance` tokens but `needed` are required.
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice `spender` may move `allowance` of `holder`'s tokens but `needed` are required.
    error InsufficientAllowance(address holder, address spender, uint256 allowance, uint256 needed);
    /// @notice No project has id `projectId`.
    error UnknownProject(uint256 projectId);
    /// @notice `buyer` published project `projectId` and cannot buy it.
    error CannotBuyOwnProject(uint256 projectId, address buyer);
    /// @notice A project needs a non-empty name.
    error EmptyProjectName();
    /// @notice A project needs a non-zero hash.
    error ZeroProjectHash();
    /// @notice Project `existingId` already has hash `projectHash`.
    error DuplicateProjectHash(bytes32 projectHash, uint256 existingId);
    /// @notice Project `projectId` has `count` purchases; `index` is past the end.
    error PurchaseIndexOutOfRange(uint256 projectId, uint256 index, uint256 count);
    /// @notice No purchase has id `purchaseId`.
    error UnknownPurchase(uint256 purchaseId);

    // ---------------------------------------------------------- construction --

    /// @param initialPublishReward Tokens minted to each project's publisher.
    /// @param initialDefaultPrice Price of projects published without a price.
    constructor(uint256 initialPublishReward, uint256 initialDefaultPrice) {
        owner = msg.sender;
        publishReward = initialPublishReward;
        defaultPrice = initialDefaultPrice;
        emit OwnershipTransferred(address(0), msg.sender);
        emit PublishRewardChanged(0, initialPublishReward);
        emit DefaultPriceChanged(0, initialDefaultPrice);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ----------------------------------------------------------- owner only --

    /// @notice Create `value` tokens for `to` (the API's "add").
    function mint(address to, uint256 value) external onlyOwner returns (bool) {
        _mint(to, value);
        emit Mint(to, value);
        return true;
    }

    /// @notice Destroy `value` of `from`'s tokens (the API's "delete").
    function burn(address from, uint256 value) external onlyOwner returns (bool) {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            balanceOf[from] = balance - value;
            totalSupply -= value; // totalSupply >= balance >= value
        }
        emit Transfer(from, address(0), value);
        emit Burn(from, value);
        return true;
    }

    /// @notice Set `account`'s balance to `value` (the API's "set"); totalSupply follows.
    function setBalance(address account, uint256 value) external onlyOwner returns (bool) {
        if (account == address(0)) revert ZeroAddress();
        uint256 previous = balanceOf[account];
        if (value > previous) {
            uint256 added = value - previous;
            totalSupply += added;
            emit Transfer(address(0), account, added);
        } else if (value < previous) {
            uint256 removed = previous - value;
            unchecked {
                totalSupply -= removed; // totalSupply >= previous > removed
            }
            emit Transfer(account, address(0), removed);
        }
        balanceOf[account] = value;
        emit BalanceSet(account, previous, value);
        return true;
    }

    /// @notice Change the tokens minted to each new project's publisher.
    function setPublishReward(uint256 newReward) external onlyOwner {
        emit PublishRewardChanged(publishReward, newReward);
        publishReward = newReward;
    }

    /// @notice Change the price of projects published without a price.
    function setDefaultPrice(uint256 newPrice) external onlyOwner {
        emit DefaultPriceChanged(defaultPrice, newPrice);
        defaultPrice = newPrice;
    }

    /// @notice Hand the contract's administration to `newOwner`.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    // ---------------------------------------------------------------- ERC-20 --

    /// @notice Move `value` of the caller's tokens to `to`.
    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @notice Let `spender` move up to `value` of the caller's tokens.
    function approve(address spender, uint256 value) external returns (bool) {
        if (spender == address(0)) revert ZeroAddress();
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// @notice Move `value` of `from`'s tokens to `to` within the caller's allowance.
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(from, msg.sender, allowed, value);
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    // -------------------------------------------------------------- projects --

    /// @notice Publish a project at `price` tokens; the caller is rewarded with
    ///         `publishReward` new tokens.
    /// @param projectName Non-empty display name.
    /// @param projectHash Non-zero hash of the project's documents, unique per project.
    /// @param time The application's timestamp of the publication.
    /// @param price Tokens a buyer pays the publisher.
    /// @return id The new project's id (also in the ProjectPublished event).
    function publishProject(string calldata projectName, bytes32 projectHash, uint64 time, uint256 price)
        external
        returns (uint256 id)
    {
        return _publish(projectName, projectHash, time, price);
    }

    /// @notice Publish a project at the contract's `defaultPrice` (the thesis's API
    ///         passes no price); otherwise the same as the four-argument form.
    function publishProject(string calldata projectName, bytes32 projectHash, uint64 time)
        external
        returns (uint256 id)
    {
        return _publish(projectName, projectHash, time, defaultPrice);
    }

    /// @notice Buy project `projectId`: its price moves from the caller to its publisher.
    /// @param time The application's timestamp of the purchase.
    /// @return purchaseId The new purchase's id (also in the ProjectPurchased event).
    function buyProject(uint256 projectId, uint64 time) external returns (uint256 purchaseId) {
        Project storage project = _existingProject(projectId);
        address publisher = project.publisher;
        if (publisher == msg.sender) revert CannotBuyOwnProject(projectId, msg.sender);
        uint256 price = project.price;
        _transfer(msg.sender, publisher, price);
        _purchases.push(Purchase({projectId: projectId, buyer: msg.sender, time: time, price: price}));
        purchaseId = _purchases.length;
        _purchaseIdsByProject[projectId].push(purchaseId);
        emit ProjectPurchased(purchaseId, projectId, msg.sender, publisher, price, time);
    }

    // ----------------------------------------------------------------- views --

    /// @notice A published project.
    function projects(uint256 projectId)
        external
        view
        returns (address publisher, string memory projectName, bytes32 projectHash, uint64 time, uint256 price)
    {
        Project storage project = _existingProject(projectId);
        return (project.publisher, project.name, project.projectHash, project.time, project.price);
    }

    /// @notice Number of purchases of project `projectId`.
    function purchaseCount(uint256 projectId) external view returns (uint256) {
        _existingProject(projectId);
        return _purchaseIdsByProject[projectId].length;
    }

    /// @notice The `index`-th purchase (0-based, in order) of project `projectId`.
    function purchaseOf(uint256 projectId, uint256 index)
        external
        view
        returns (uint256 purchaseId, address buyer, uint256 price, uint64 time)
    {
        _existingProject(projectId);
        uint256[] storage ids = _purchaseIdsByProject[projectId];
        if (index >= ids.length) revert PurchaseIndexOutOfRange(projectId, index, ids.length);
        purchaseId = ids[index];
        Purchase storage purchase = _purchases[purchaseId - 1];
        return (purchaseId, purchase.buyer, purchase.price, purchase.time);
    }

    /// @notice Number of purchases of all projects; their ids are 1..totalPurchases.
    function totalPurchases() external view returns (uint256) {
        return _purchases.length;
    }

    /// @notice A purchase by its id.
    function purchases(uint256 purchaseId)
        external
        view
        returns (uint256 projectId, address buyer, uint256 price, uint64 time)
    {
        if (purchaseId == 0 || purchaseId > _purchases.length) revert UnknownPurchase(purchaseId);
        Purchase storage purchase = _purchases[purchaseId - 1];
        return (purchase.projectId, purchase.buyer, purchase.price, purchase.time);
    }

    // -------------------------------------------------------------- internals --

    function _mint(address to, uint256 value) private {
        if (to == address(0)) revert ZeroAddress();
        totalSupply += value;
        unchecked {
            balanceOf[to] += value; // balance <= totalSupply, which did not overflow
        }
        emit Transfer(address(0), to, value);
    }

    function _transfer(address from, address to, uint256 value) private {
        if (to == address(0)) revert ZeroAddress();
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            balanceOf[from] = balance - value;
            balanceOf[to] += value; // the sum of balances is totalSupply
        }
        emit Transfer(from, to, value);
    }

    function _publish(string calldata projectName, bytes32 projectHash, uint64 time, uint256 price)
        private
        returns (uint256 id)
    {
        if (bytes(projectName).length == 0) revert EmptyProjectName();
        if (projectHash == bytes32(0)) revert ZeroProjectHash();
        uint256 existing = projectIdOf[projectHash];
        if (existing != 0) revert DuplicateProjectHash(projectHash, existing);
        id = ++projectCount;
        _projects[id] = Project({
            publisher: msg.sender, time: time, projectHash: projectHash, price: price, name: projectName
        });
        projectIdOf[projectHash] = id;
        uint256 reward = publishReward;
        if (reward != 0) _mint(msg.sender, reward);
        emit ProjectPublished(id, msg.sender, projectName, projectHash, time, price, reward);
    }

    function _existingProject(uint256 projectId) private view returns (Project storage project) {
        if (projectId == 0 || projectId > projectCount) revert UnknownProject(projectId);
        return _projects[projectId];
    }
}
